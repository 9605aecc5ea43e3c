//! The progress display as a user sees it: on a real terminal (tmux, read back with
//! `capture-pane`) and as plain lines on a pipe. One target is held in its build by a gate
//! file the test creates, so "finished while another still builds" is a state the test
//! waits for, not a race it hopes to win.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::support::World;

/// `quick` builds at once; `slow` builds until `gate` exists.
fn gated_recipe(world: &World, gate: &Path) -> PathBuf {
    let recipe = world.dir.path().join("gated.toml");
    let text = format!(
        r#"
        [[target]]
        name = "quick"
        kind = "command"
        artifact_dir = "quick"
        commands = ["echo quick > quick.txt"]
        [[target.output]]
        path = "quick.txt"

        [[target]]
        name = "slow"
        kind = "command"
        artifact_dir = "slow"
        commands = ["while [ ! -e '{}' ]; do sleep 0.05; done; head -c 200000 /dev/urandom > slow.bin"]
        [[target.output]]
        path = "slow.bin"
        "#,
        gate.display()
    );
    std::fs::write(&recipe, text).unwrap();
    recipe
}

/// A tmux server of the test's own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(name: &str, dir: &Path, shell_command: &str) -> Tmux {
        let socket = format!("tbuild-test-{}-{name}", std::process::id());
        let status = Command::new("tmux")
            .args(["-L", &socket, "new-session", "-d", "-x", "220", "-y", "40", "-s", name, "-c"])
            .arg(dir)
            .arg(shell_command)
            .env_remove("TMUX")
            .status()
            .expect("tmux runs (scripts/install-toolchains.sh test installs it)");
        assert!(status.success(), "tmux new-session failed");
        Tmux { socket }
    }

    /// The screen, with escape sequences for colours (`-e`); the pane is wide enough for every line.
    fn screen(&self) -> String {
        let output = Command::new("tmux").args(["-L", &self.socket, "capture-pane", "-p", "-e"]).output().unwrap();
        assert!(output.status.success(), "capture-pane failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Polls the screen until `ready` holds; a hang guard, not a timing assertion.
    fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(started.elapsed() < Duration::from_secs(300), "no {what} on the screen after 300 s:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).status();
    }
}

/// The screen without escape sequences.
fn plain(screen: &str) -> String {
    let mut out = String::new();
    let mut chars = screen.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The line of `screen` about `target`: `  quick  built in ...` when done, `⠋ slow  build 3s`
/// while live.
fn row<'a>(screen: &'a str, target: &str) -> Option<&'a str> {
    screen.lines().find(|l| {
        let text = plain(l);
        let words: Vec<&str> = text.split_whitespace().take(2).collect();
        words.first() == Some(&target) || words.get(1) == Some(&target)
    })
}

/// `in 12 ms` of `built in 12 ms, packed in ...`.
fn built_time(line: &str) -> String {
    let text = plain(line);
    let after = text.split("built in ").nth(1).unwrap_or_else(|| panic!("no `built in` in {text:?}"));
    after.split([',', '(']).next().unwrap().trim().to_string()
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The shell command a tmux pane runs: tbuild with the world's cache, then its exit code.
fn pane_command(world: &World, recipe: &Path, out: &str, extra_env: &str) -> String {
    let tbuild = env!("CARGO_BIN_EXE_tbuild");
    format!(
        "env -u CI -u NO_COLOR -u TBUILD_CONFIG XDG_CONFIG_HOME={config} TBUILD_CACHE_DIR={cache} {extra_env} {tbuild} core \
         --repo {repo} --sha main --recipe {recipe} --out {out}; echo EXIT=$?; sleep 600",
        config = shell_quote(world.dir.path().join("config-home").to_str().unwrap()),
        cache = shell_quote(world.cache().to_str().unwrap()),
        tbuild = shell_quote(tbuild),
        repo = shell_quote(world.repo().to_str().unwrap()),
        recipe = shell_quote(recipe.to_str().unwrap()),
        out = shell_quote(world.out(out).to_str().unwrap()),
    )
}

#[test]
fn terminal_display_shows_each_outcome_as_it_happens_and_the_summary_last_in_colour() {
    let world = World::new();
    let gate = world.dir.path().join("gate");
    let recipe = gated_recipe(&world, &gate);

    let tmux = Tmux::start("fresh", world.dir.path(), &pane_command(&world, &recipe, "out", ""));
    // quick is done while slow cannot be: its gate does not exist yet.
    let screen = tmux.wait_for("final line of quick", |s| row(s, "quick").is_some_and(|l| plain(l).contains("built")));
    let slow = row(&screen, "slow").unwrap_or_else(|| panic!("slow has a live line while it builds:\n{screen}"));
    assert!(plain(slow).contains("build") && !plain(slow).contains("built"), "slow is still building: {slow:?}");
    let quick = row(&screen, "quick").unwrap();
    assert!(
        quick.contains("\u{1b}[") && quick.contains("built"),
        "the status word is coloured on a terminal: {quick:?}"
    );
    assert!(plain(quick).contains("output 6 B, archive"), "sizes are labelled: {quick:?}");
    assert!(!screen.contains("EXIT="), "the run is not over:\n{screen}");

    std::fs::write(&gate, "").unwrap();
    let screen = tmux.wait_for("end of the run", |s| s.contains("EXIT="));
    let lines: Vec<String> =
        screen.lines().map(|l| plain(l).trim_end().to_string()).filter(|l| !l.is_empty()).collect();
    let exit = lines.iter().position(|l| l.starts_with("EXIT=")).unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(lines[exit], "EXIT=0", "{screen}");
    assert!(
        lines[exit - 1].starts_with("tbuild: 2 targets: 0 restored, 2 built, 0 failed"),
        "the summary is the last line:\n{screen}"
    );
    let (quick, slow) = (row(&screen, "quick").unwrap(), row(&screen, "slow").unwrap());
    assert!(plain(slow).contains("built in"), "slow ended built: {slow:?}");
    assert_ne!(built_time(quick), built_time(slow), "each row has its own time:\n{screen}");
    let quick_at = lines.iter().position(|l| *l == plain(quick).trim_end()).unwrap();
    let slow_at = lines.iter().position(|l| *l == plain(slow).trim_end()).unwrap();
    assert!(quick_at < slow_at && slow_at < exit - 1, "final lines in the order targets finished:\n{screen}");
    assert!(lines.iter().all(|l| !l.contains(" pack ")), "no target left on pack:\n{screen}");
    for target in ["quick", "slow"] {
        let rows = lines.iter().filter(|l| l.split_whitespace().take(2).any(|w| w == target)).count();
        assert_eq!(rows, 1, "one line per target once the run is over:\n{screen}");
    }
    drop(tmux);

    // NO_COLOR: the same display, no colour. A new --out: both restored from the cache.
    let tmux = Tmux::start("nocolor", world.dir.path(), &pane_command(&world, &recipe, "again", "NO_COLOR=1"));
    let screen = tmux.wait_for("end of the run", |s| s.contains("EXIT="));
    assert!(screen.contains("EXIT=0"), "{screen}");
    let quick = row(&screen, "quick").unwrap_or_else(|| panic!("{screen}"));
    assert!(plain(quick).contains("restored in"), "{quick:?}");
    assert!(!screen.contains('\u{1b}'), "no colour under NO_COLOR:\n{screen:?}");
}

#[test]
fn plain_lines_report_each_outcome_when_it_happens_without_colour() {
    let world = World::new();
    let gate = world.dir.path().join("gate");
    let recipe = gated_recipe(&world, &gate);
    let args = world.core_args_with("main", "out", &["--recipe", recipe.to_str().unwrap()]);
    let mut child = world
        .command(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
        .env_remove("CI")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 {
        if line.starts_with("tbuild: quick: built in") {
            // quick's outcome is printed while slow still waits for its gate.
            assert!(!gate.exists());
            std::fs::write(&gate, "").unwrap();
        }
        lines.push(std::mem::take(&mut line));
    }
    assert!(child.wait().unwrap().success(), "{lines:?}");
    assert!(gate.exists(), "quick's outcome was printed: {lines:?}");
    let text = lines.concat();
    assert!(!text.contains('\u{1b}'), "no colour on a pipe: {text}");
    assert!(text.contains("tbuild: slow: build\n"), "{text}");
    assert!(lines.last().unwrap().starts_with("tbuild: 2 targets: 0 restored, 2 built"), "summary last: {text}");
}
