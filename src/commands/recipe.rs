//! `tbuild recipe`: the recipe tbuild would use, as TOML, with where it came from.

use crate::cache::{BlobDigestMemo, LocalCache};
use crate::cli::RecipeArgs;
use crate::error::Error;
use crate::plan::recipe_and_workspace;
use crate::report::Reporter;

pub fn run(args: &RecipeArgs, cache: &LocalCache, reporter: &Reporter) -> Result<(), Error> {
    let loaded = super::key::load(&args.rev, cache, reporter)?;
    let mut memo = BlobDigestMemo::load(&cache.memo_path())?;
    let (recipe, source, _) = recipe_and_workspace(&loaded.tree, args.recipe.as_deref(), Some(cache), &mut memo)?;
    memo.save()?;
    let recipe = recipe.select(&args.targets)?;
    if args.format.is_json() {
        let report = serde_json::json!({
            "source": source.to_string(),
            "tree": loaded.tree.provenance(),
            "recipe": recipe,
        });
        println!("{}", serde_json::to_string_pretty(&report).expect("recipes serialise"));
        return Ok(());
    }
    println!("# recipe: {source}");
    println!("# tree: {}", loaded.tree.provenance());
    print!("{}", recipe.to_toml());
    Ok(())
}
