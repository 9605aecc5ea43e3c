//! `tbuild recipe`: the recipe tbuild would use, as TOML, with where it came from.

use crate::cache::LocalCache;
use crate::cli::RecipeArgs;
use crate::error::Error;
use crate::recipe::resolve_recipe;
use crate::report::Reporter;

pub fn run(args: &RecipeArgs, cache: &LocalCache, reporter: &Reporter) -> Result<(), Error> {
    let loaded = super::key::load(args, cache, reporter)?;
    let (recipe, source) = resolve_recipe(&loaded.tree, args.recipe.as_deref())?;
    let recipe = recipe.select(&args.targets)?;
    println!("# recipe: {source}");
    println!("# tree: {}", loaded.tree.provenance());
    print!("{}", recipe.to_toml());
    Ok(())
}
