//! `tbuild recipe`: the recipe tbuild would use, as TOML, with where it came from.

use crate::cache::LocalCache;
use crate::cli::RecipeArgs;
use crate::engine::plan;
use crate::error::Error;
use crate::report::Reporter;

pub fn run(args: &RecipeArgs, cache: &LocalCache, reporter: &Reporter) -> Result<(), Error> {
    let rev = super::rev(&args.rev)?;
    let (loaded, recipe, source) = plan::load_recipe(cache, rev, args.recipe.as_deref(), &args.targets, reporter)?;
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
