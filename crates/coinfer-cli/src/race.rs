//! `coinfer race`: search methods at equal budgets of distinct evaluated plans, over seeds,
//! against the best plan known (the library's [`CoInference::race`](coinfer_automl::CoInference::race)).

use std::path::PathBuf;

use clap::Args;
use coinfer_automl::race::{RaceConfig, RaceMethod, race_markdown};

use crate::search::{SearchArgs, built};

type CliResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Options of `coinfer race` (plus every option of `coinfer search` that sets up the backbone,
/// the codecs, the profiles and the reward).
#[derive(Args, Debug)]
pub struct RaceArgs {
    #[command(flatten)]
    search: SearchArgs,
    /// Methods to race (comma separated): ddpg, ddpg+refine, random, uniform-grid, cma-es.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ddpg,ddpg+refine,random,uniform-grid,cma-es"
    )]
    methods: Vec<String>,
    /// Budgets of distinct evaluated plans (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "50,100,200,400")]
    budgets: Vec<usize>,
    /// Seeds per method (the search's --seed, then the next ones).
    #[arg(long, default_value_t = 5)]
    seeds: usize,
    /// The reference search holds this many times the largest budget distinct plans.
    #[arg(long, default_value_t = 20)]
    reference_factor: usize,
    /// Fraction of each budget the agent with refinement spends on refinement.
    #[arg(long, default_value_t = 0.25)]
    refine_share: f32,
    /// The agent's refinement also climbs from the unpruned form of its best plan at every
    /// split.
    #[arg(long)]
    refine_unpruned_starts: bool,
    /// Where to write race.json, race.md and race.svg (default: results/<run>/).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs the race and prints every run and every summary row as a JSON line, then the table.
pub fn run(args: RaceArgs) -> CliResult<()> {
    let search = built(&args.search, args.out.as_deref())?;
    let methods = args
        .methods
        .iter()
        .map(|name| {
            RaceMethod::from_name(name).ok_or_else(|| {
                format!(
                    "unknown method `{name}` in --methods (known: {})",
                    RaceMethod::ALL.map(RaceMethod::name).join(", ")
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let config = RaceConfig {
        methods,
        budgets: args.budgets,
        seeds: args.seeds,
        reference_factor: args.reference_factor,
        refine_share: args.refine_share,
        refine_unpruned_starts: args.refine_unpruned_starts,
        ..RaceConfig::default()
    }
    .check()?;
    let report = search.race(&config)?;
    for run in &report.runs {
        println!("{}", serde_json::to_string(run)?);
    }
    for row in &report.summary {
        println!("{}", serde_json::to_string(row)?);
    }
    println!("{}", serde_json::to_string(&report.reference)?);
    println!("{}", race_markdown(&report));
    Ok(())
}
