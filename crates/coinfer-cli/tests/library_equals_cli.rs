//! The library and the CLI run one pipeline: `coinfer search` and a program calling
//! `CoInference::builder()…build()?.search()` with the same data, options and seed write the
//! same report, apart from wall times.

use std::path::PathBuf;
use std::process::Command;

use coinfer_automl::data::fashion_mnist;
use coinfer_automl::prelude::*;
use coinfer_automl::{ComputeSource, LinkSource};

mod tiny_data;
use tiny_data::tiny_data;

const BIN: &str = env!("CARGO_BIN_EXE_coinfer");

/// The report without what depends on the wall clock (phase times, total seconds).
fn without_wall_times(mut report: serde_json::Value) -> serde_json::Value {
    let object = report.as_object_mut().unwrap();
    assert!(object.remove("seconds").is_some(), "a report has `seconds`");
    assert!(object.remove("phases").is_some(), "a report has `phases`");
    report
}

#[test]
fn the_library_and_the_cli_write_the_same_report() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("coinfer-library-equals-cli");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let data_dir = tiny_data(&dir);
    let results = dir.join("results");
    // The CLI, with a seed other than the default, a few episodes and fixed codecs.
    let cli = Command::new(BIN)
        .args([
            "search",
            "--results",
            results.to_str().unwrap(),
            "--run",
            "cli",
        ])
        .args(["--data-dir", data_dir.to_str().unwrap()])
        .args(["--backbone-epochs", "1", "--validation-images", "40"])
        .args([
            "--ae-ratios",
            "--spatial-ratios",
            "--refine-evaluations",
            "10",
        ])
        .args([
            "--exhaustive-levels",
            "0",
            "--episodes",
            "4",
            "--warmup",
            "2",
        ])
        .args([
            "--seed",
            "3",
            "--device",
            "device-1gflops",
            "--link",
            "link-10mbps",
        ])
        .args(["--edge", "edge-gpu", "--reward", "within-tolerance"])
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "coinfer search failed:\n{}\n{}",
        String::from_utf8_lossy(&cli.stdout),
        String::from_utf8_lossy(&cli.stderr)
    );
    let cli_report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(results.join("cli/report.json")).unwrap()).unwrap();

    // The library: the same options, as a program would set them.
    let mut config = SearchConfig {
        validation_images: 40,
        episodes: 4,
        exhaustive_levels: 0,
        seed: 3,
        codecs: CodecSetup {
            ae_ratios: vec![],
            spatial_ratios: vec![],
            ..CodecSetup::default()
        },
        ..SearchConfig::default()
    };
    config.ddpg.warmup_episodes = 2;
    config.ddpg.seed = 3;
    config.refine.max_evaluations = 10;
    let device = Device::flex();
    let report = CoInference::builder()
        .train_backbone("resnet-mini", Budget::Epochs(1))
        .data(fashion_mnist::load_dir(&data_dir).unwrap())
        .data_label("fashion-mnist-full")
        .device("device-1gflops".parse::<ComputeSource>().unwrap())
        .link("link-10mbps".parse::<LinkSource>().unwrap())
        .edge("edge-gpu".parse::<ComputeSource>().unwrap())
        .reward(Reward::within_tolerance(0.01))
        .config(config)
        .backend(device)
        .output(results.join("library"))
        .build()
        .unwrap()
        .search()
        .unwrap();
    // Through text, as the CLI's report was read (f32 fields print shortest).
    let library_report: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(results.join("library/report.json")).unwrap())
            .unwrap();
    assert_eq!(written, library_report);
    assert_eq!(
        report.plan.profiles,
        ["device-1gflops", "link-10mbps", "edge-gpu"].map(String::from)
    );
    assert!(
        !report.baselines.is_empty(),
        "the library ran the baselines"
    );
    let (cli_report, library_report) = (
        without_wall_times(cli_report),
        without_wall_times(library_report),
    );
    assert_eq!(
        first_difference(&cli_report, &library_report, "report"),
        None,
        "the CLI's report (left) and the library's (right) differ"
    );
}

/// The path and values of the first place where `a` and `b` differ.
fn first_difference(a: &serde_json::Value, b: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys()) {
                let (u, v) = (&x.get(key), &y.get(key));
                match (u, v) {
                    (Some(u), Some(v)) => {
                        if let Some(d) = first_difference(u, v, &format!("{path}.{key}")) {
                            return Some(d);
                        }
                    }
                    _ => return Some(format!("{path}.{key}: {u:?} vs {v:?}")),
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (u, v))| first_difference(u, v, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{path}: {a} vs {b}")),
    }
}
