//! `tbuild recipe`: the recipe tbuild would use, as TOML, with where it came from.

use crate::cache::LocalCache;
use crate::cli::RecipeArgs;
use crate::engine::plan;
use crate::error::Error;
use crate::report::Reporter;

pub fn run(args: &RecipeArgs, cache: &LocalCache, reporter: &Reporter) -> Result<(), Error> {
    let rev = super::key::rev(args)?;
    let (loaded, recipe, source) = plan::load_recipe(cache, rev, args.recipe.as_deref(), &args.targets, reporter)?;
    println!("# recipe: {source}");
    println!("# tree: {}", loaded.tree.provenance());
    print!("{}", recipe.to_toml());
    Ok(())
}
