//! Any text as a recipe: parsing never panics, and a parsed recipe's TOML parses again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tbuild::recipe::Recipe;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(recipe) = Recipe::parse(text, "fuzz") {
        let printed = recipe.to_toml();
        Recipe::parse(&printed, "fuzz (printed)").expect("a parsed recipe prints as a valid recipe");
    }
});
