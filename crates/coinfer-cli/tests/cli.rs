//! The `coinfer` binary as a user runs it, on tiny settings: `search` (then `--resume`),
//! `plot`, `serve` + `infer` on loopback, and bad flags. Usage errors exit with 2 (clap),
//! other errors with 1 and an `error:` line; nothing may panic (exit 101).
//!
//! The data is a tiny Fashion-MNIST directory written by the test (120 training, 40 test
//! images taken from the embedded subset), so training the backbone, the search and the
//! fine-tuning each take a moment. The codecs are the fixed ones (`--ae-ratios` without a value
//! trains no autoencoder).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use coinfer_automl::data::{embedded, fashion_mnist};

mod tiny_data;
use tiny_data::tiny_data;

const BIN: &str = env!("CARGO_BIN_EXE_coinfer");

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("coinfer-cli-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn coinfer(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `coinfer args` and asserts its exit code (printing its output when it differs).
fn expect_code(args: &[&str], code: i32) -> Output {
    let out = coinfer(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "coinfer {args:?}\n--- stdout\n{}\n--- stderr\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// `coinfer search` on tiny settings (one backbone epoch, 40 validation images, fixed codecs,
/// a 10-plan refinement, no exhaustive grid) into `results/run`, plus `extra`; expects `code`.
/// The search options that keep a test's search (or sweep) to seconds.
const TINY: [&str; 10] = [
    "--backbone-epochs",
    "1",
    "--validation-images",
    "40",
    "--ae-ratios",
    "--spatial-ratios",
    "--refine-evaluations",
    "10",
    "--exhaustive-levels",
    "0",
];

/// `coinfer <command>` (search or sweep) with the [`TINY`] options, then `extra`.
fn tiny(
    command: &str,
    results: &Path,
    run: &str,
    data: &Path,
    extra: &[&str],
    code: i32,
) -> Output {
    let mut args = vec![
        command,
        "--results",
        results.to_str().unwrap(),
        "--run",
        run,
        "--data-dir",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(&TINY);
    args.extend_from_slice(extra);
    expect_code(&args, code)
}

fn tiny_search(results: &Path, run: &str, data: &Path, extra: &[&str], code: i32) -> Output {
    tiny("search", results, run, data, extra, code)
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn episode_rewards(report: &serde_json::Value) -> Vec<f64> {
    report["episodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reward"].as_f64().unwrap())
        .collect()
}

/// Kills the server when the test ends, also on failure.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn search_resume_plot_serve_and_infer_on_tiny_settings() {
    let dir = scratch("search");
    let data = tiny_data(&dir);
    let results = dir.join("results");
    let search = |episodes: &str, extra: &[&str], code: i32| {
        let mut args = vec![
            "--episodes",
            episodes,
            "--warmup",
            "2",
            "--finetune-epochs",
            "1",
        ];
        args.extend_from_slice(extra);
        tiny_search(&results, "tiny", &data, &args, code)
    };

    let first = search("4", &[], 0);
    let out = results.join("tiny");
    let stdout = text(&first.stdout);
    assert!(
        stdout.contains("data: 120 train / 40 test images"),
        "{stdout}"
    );
    assert!(stdout.contains("DDPG: 4 episodes"), "{stdout}");
    for file in [
        "plan.json",
        "report.json",
        "report.md",
        "codecs.md",
        "reward.svg",
        "scatter.svg",
        "rate-accuracy.svg",
        "breakdown.svg",
        "edge-only/plan.json",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let report = json(&out.join("report.json"));
    let first_rewards = episode_rewards(&report);
    assert_eq!(first_rewards.len(), 4);
    // Only fixed codecs: no autoencoder was trained.
    let codec = report["plan"]["codec"].to_string();
    assert!(!codec.contains("Autoencoder"), "{codec}");

    // Resume: the second run reuses the cached backbone and the checkpoint, runs only the two
    // missing episodes, and the first four are those of the first run.
    let resumed = search("6", &["--resume"], 0);
    let stdout = text(&resumed.stdout);
    assert!(stdout.contains("backbone: reusing"), "{stdout}");
    assert!(
        stdout.contains("resume: the checkpoint holds 4 episodes"),
        "{stdout}"
    );
    let report = json(&out.join("report.json"));
    let rewards = episode_rewards(&report);
    assert_eq!(rewards.len(), 6);
    assert_eq!(rewards[..4], first_rewards[..]);

    // A bad option that only the search itself can judge: exit 1 with a named cause, and the
    // earlier run's files are untouched.
    let before = snapshot(&out);
    let bad = search("2", &["--reward", "budget"], 1);
    let stderr = text(&bad.stderr);
    assert!(stderr.contains("needs a budget (--budget-ms)"), "{stderr}");
    assert!(
        snapshot(&out) == before,
        "a failed search changed the earlier run"
    );

    // An interrupted search left a corrupt checkpoint: --resume names it before profiling or
    // training anything, and the earlier run is untouched.
    let leftover = results
        .join(".tiny.partial")
        .join("checkpoint")
        .join("agent");
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::write(leftover.join("agent.json"), "{ not json").unwrap();
    let corrupt = search("8", &["--resume"], 1);
    let (stdout, stderr) = (text(&corrupt.stdout), text(&corrupt.stderr));
    assert!(stderr.contains("checkpoint cannot be used"), "{stderr}");
    assert!(stderr.contains("agent.json"), "{stderr}");
    assert!(!stdout.contains("profiling"), "{stdout}");
    assert!(
        snapshot(&out) == before,
        "a failed resume changed the earlier run"
    );
    // Without --resume the leftover is discarded.
    std::fs::remove_dir_all(results.join(".tiny.partial")).unwrap();

    // plot: redraws the SVGs from report.json.
    let svgs = [
        "reward.svg",
        "scatter.svg",
        "rate-accuracy.svg",
        "breakdown.svg",
    ];
    for svg in svgs {
        std::fs::remove_file(out.join(svg)).unwrap();
    }
    let report_path = out.join("report.json");
    expect_code(&["plot", "--report", report_path.to_str().unwrap()], 0);
    for svg in svgs {
        let body = std::fs::read_to_string(out.join(svg)).unwrap();
        assert!(body.contains("<svg"), "{svg} is not an SVG");
    }
    // plot --rate-json: every codec at every split point as JSON lines, image codecs among
    // the input's, the Pareto front marked.
    let lines = expect_code(
        &[
            "plot",
            "--report",
            report_path.to_str().unwrap(),
            "--rate-json",
        ],
        0,
    );
    let points: Vec<serde_json::Value> = text(&lines.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        points
            .iter()
            .any(|p| p["family"] == "image" && p["split"] == 0 && p["codec"]["format"] == "webp"),
        "{points:?}"
    );
    assert!(points.iter().any(|p| p["pareto"] == true));
    assert!(points.iter().any(|p| p["split"] != 0));
    assert!(text(&std::fs::read(out.join("report.md")).unwrap()).contains("Rate–accuracy"));

    // serve + infer on loopback (port 0: the server prints the address it got).
    let plan = out.join("plan.json");
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--plan",
            plan.to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _server = Server(child);
    assert!(line.starts_with("serving plan "), "{line}");
    let addr = line.trim().rsplit(' ').next().unwrap().to_string();
    let summary = dir.join("infer.json");
    let infer = expect_code(
        &[
            "infer",
            "--plan",
            plan.to_str().unwrap(),
            "--server",
            &addr,
            "--n",
            "8",
            "--data-dir",
            data.to_str().unwrap(),
            "--json",
            summary.to_str().unwrap(),
        ],
        0,
    );
    let stdout = text(&infer.stdout);
    assert!(stdout.contains("8 requests"), "{stdout}");
    let summary = json(&summary);
    let plan_json = json(&plan);
    assert_eq!(summary["requests"], 8);
    assert_eq!(summary["split"], plan_json["split"]);
    let accuracy = summary["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy), "{accuracy}");
    assert!(summary["frame_bytes"].as_u64().unwrap() > summary["payload_bytes"].as_u64().unwrap());
    // The same plan against a wrong server address is an error, not a panic.
    let err = expect_code(
        &[
            "infer",
            "--plan",
            plan.to_str().unwrap(),
            "--server",
            "127.0.0.1:1",
            "--n",
            "1",
        ],
        1,
    );
    assert!(
        text(&err.stderr).starts_with("error:"),
        "{}",
        text(&err.stderr)
    );
}

#[test]
fn bad_flags_exit_with_2_and_bad_inputs_with_1() {
    let dir = scratch("bad");
    // Usage errors: clap's exit code 2.
    for args in [
        &["frobnicate"][..],
        &["search", "--episodes", "many"],
        &["search", "--no-such-flag"],
        &["serve"],
        &["infer", "--plan"],
        &[],
    ] {
        let out = expect_code(args, 2);
        assert!(!text(&out.stderr).is_empty(), "{args:?}: no usage message");
    }
    // Errors of the inputs: exit code 1 and an `error:` line naming the culprit.
    let missing = dir.join("missing.json");
    let missing = missing.to_str().unwrap();
    let not_json = dir.join("report.json");
    std::fs::write(&not_json, "{ not json").unwrap();
    for (args, culprit) in [
        (vec!["plot", "--report", missing], "missing.json"),
        (
            vec!["plot", "--report", not_json.to_str().unwrap()],
            "not a search report",
        ),
        (vec!["serve", "--plan", missing], "missing.json"),
        (
            vec!["infer", "--plan", missing, "--rate", "fast"],
            "missing.json",
        ),
    ] {
        let out = expect_code(&args, 1);
        let stderr = text(&out.stderr);
        assert!(stderr.starts_with("error:"), "{args:?}: {stderr}");
        assert!(stderr.contains(culprit), "{args:?}: {stderr}");
    }
}

#[test]
fn search_runs_unchanged_on_the_mobilenet_backbone() {
    let dir = scratch("mobilenet");
    let data = tiny_data(&dir);
    let results = dir.join("results");
    tiny_search(
        &results,
        "mobile",
        &data,
        &[
            "--model",
            "mobilenetv2-mini",
            "--episodes",
            "3",
            "--warmup",
            "1",
            "--finetune-epochs",
            "0",
            "--no-baselines",
        ],
        0,
    );
    let report = json(&results.join("mobile").join("report.json"));
    assert_eq!(report["plan"]["model"], "mobilenetv2-mini");
    assert_eq!(episode_rewards(&report).len(), 3);
    // Every scored plan cuts inside the 11-block network and keeps a channel count for each
    // ratio it chose.
    let evaluated = report["evaluated"].as_array().unwrap();
    assert!(!evaluated.is_empty());
    for evaluation in evaluated {
        assert!(evaluation["split"].as_u64().unwrap() <= 11, "{evaluation}");
        assert_eq!(
            evaluation["prune_ratios"].as_array().unwrap().len(),
            evaluation["kept"].as_array().unwrap().len(),
            "{evaluation}"
        );
    }
}

#[test]
fn a_failed_sweep_leaves_the_earlier_one_as_it_was() {
    let dir = scratch("sweep-staging");
    let data = tiny_data(&dir);
    let results = dir.join("results");
    let sweep = |gflops: &str, code: i32| {
        let grid = [
            "--episodes-per-point",
            "2",
            "--rates-kbps",
            "100",
            "--rtts-ms",
            "10",
            "--device-gflops",
            gflops,
        ];
        tiny("sweep", &results, "s", &data, &grid, code)
    };
    let out = sweep("1", 0);
    let finished = results.join("s");
    // The finished sweep says what was asked: one point (100 kbit/s, 1 GFLOP/s, 10 ms), two
    // agent episodes, every baseline, a searched plan with a positive latency; sweep.md has
    // that point's row; every plot is an SVG with something drawn in it; stdout prints the
    // point as the JSON line sweep.json holds.
    let report = json(&finished.join("sweep.json"));
    assert_eq!(report["episodes_per_point"], 2, "{report}");
    let points = report["points"].as_array().unwrap();
    assert_eq!(points.len(), 1, "{report}");
    let point = &points[0];
    assert_eq!(point["rate_bps"].as_f64(), Some(100e3), "{point}");
    assert_eq!(point["device_flops_per_s"].as_f64(), Some(1e9), "{point}");
    assert_eq!(point["rtt_s"].as_f64(), Some(0.01), "{point}");
    let searched = &point["searched"];
    assert!(searched["latency_s"].as_f64().unwrap() > 0.0, "{point}");
    assert!(
        (0.0..=1.0).contains(&searched["accuracy"].as_f64().unwrap()),
        "{point}"
    );
    let baselines: Vec<&str> = point["baselines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = coinfer_automl::Baseline::ALL
        .iter()
        .map(|b| b.name())
        .collect();
    assert_eq!(baselines, expected, "{point}");
    let md = std::fs::read_to_string(finished.join("sweep.md")).unwrap();
    assert!(
        md.starts_with("# Regime sweep\n\n1 points, 2 agent episodes"),
        "{md}"
    );
    let row = format!(
        "| 10 | 1.00 | 100.0 | {} ",
        searched["kind"].as_str().unwrap()
    );
    assert!(md.contains(&row), "no row `{row}` in\n{md}");
    for svg in ["regime.svg", "latency-vs-rate.svg", "speedup.svg"] {
        let body = std::fs::read_to_string(finished.join(svg)).unwrap();
        assert!(
            body.starts_with("<svg") && body.contains("<text"),
            "{svg}: {body}"
        );
    }
    let line: serde_json::Value = serde_json::from_str(
        text(&out.stdout)
            .lines()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("no JSON line: {}", text(&out.stdout))),
    )
    .unwrap();
    assert_eq!(&line, point);
    assert!(!results.join(".s.partial").exists(), "staging left behind");
    // A grid the sweep refuses after building its search (which measures and writes a fresh
    // profile and codec table): the earlier sweep stays byte for byte.
    let before = snapshot(&finished);
    let out = sweep("0", 1);
    assert!(
        text(&out.stderr).contains("device"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        before == snapshot(&finished),
        "the failed sweep changed the earlier one"
    );
}

/// Starts `coinfer serve --plan plan` on a free loopback port; returns it and its address.
fn serve(plan: &Path) -> (Server, String) {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--plan",
            plan.to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let server = Server(child);
    assert!(line.starts_with("serving plan "), "{line}");
    (server, line.trim().rsplit(' ').next().unwrap().to_string())
}

#[test]
fn the_default_codec_path_trains_autoencoders_and_its_plan_serves() {
    // The main job's codecs (1×1 autoencoders r = 4, 16 and spatial ones r = 8, 16, the
    // defaults) trained for one epoch on the tiny data, then the chosen plan served and
    // queried through the binaries.
    let dir = scratch("autoencoders");
    let data = tiny_data(&dir);
    let results = dir.join("results");
    let out = expect_code(
        &[
            "search",
            "--results",
            results.to_str().unwrap(),
            "--run",
            "ae",
            "--data-dir",
            data.to_str().unwrap(),
            "--backbone-epochs",
            "1",
            "--validation-images",
            "40",
            "--ae-epochs",
            "1",
            "--episodes",
            "3",
            "--warmup",
            "1",
            "--refine-evaluations",
            "5",
            "--finetune-epochs",
            "1",
            "--no-baselines",
            "--exhaustive-levels",
            "0",
        ],
        0,
    );
    let run = results.join("ae");
    // Every split after the input offers both autoencoder families (codecs.md lists what the
    // search could choose from), and their ids are the defaults'.
    let table = std::fs::read_to_string(run.join("codecs.md")).unwrap();
    let splits = table.matches("## Split ").count();
    assert!(splits >= 2, "{table}");
    for family in [
        "| ae-r4-b",
        "| ae-r16-b",
        "| ae-r8-b2-k3-s2 ",
        "| ae-r16-b3-k3-s2 ",
    ] {
        assert!(
            table.matches(family).count() >= splits - 1,
            "{family} is not offered at every split after the input:\n{table}"
        );
    }
    let plan_path = run.join("plan.json");
    let plan = json(&plan_path);
    let (_server, addr) = serve(&plan_path);
    let summary = dir.join("infer.json");
    expect_code(
        &[
            "infer",
            "--plan",
            plan_path.to_str().unwrap(),
            "--server",
            &addr,
            "--n",
            "40",
            "--data-dir",
            data.to_str().unwrap(),
            "--json",
            summary.to_str().unwrap(),
        ],
        0,
    );
    // The served plan answers every request, with the accuracy the search measured on the
    // same 40 test images in process.
    let summary = json(&summary);
    assert_eq!(summary["requests"], 40);
    let served = summary["accuracy"].as_f64().unwrap();
    let in_process = plan["test_accuracy"].as_f64().unwrap();
    assert!(
        (served - in_process).abs() < 1e-6,
        "served {served}, in process {in_process} ({})",
        text(&out.stdout)
    );
}

/// The validation images the report's plans were scored on (from its backbone comparison).
fn report_validation_images(report: &serde_json::Value) -> serde_json::Value {
    report["evaluated"][0]["paired"]["images"].clone()
}

/// The tiny data as an image folder: `root/train/<class>/<i>.png` and `root/test/...`, the
/// class folders named so that their sorted order is the label order.
fn tiny_png_folder(dir: &Path) -> PathBuf {
    let full = embedded::fashion_mnist_subset().unwrap();
    let root = dir.join("pngs");
    for (split, data) in [
        ("train", full.train.class_balanced_subset(12, 1).unwrap()),
        ("test", full.test.class_balanced_subset(4, 1).unwrap()),
    ] {
        for (i, &label) in data.labels().iter().enumerate() {
            let name = fashion_mnist::CLASS_NAMES[label as usize].replace('/', "-");
            let class = root.join(split).join(format!("{label:02}-{name}"));
            std::fs::create_dir_all(&class).unwrap();
            image::GrayImage::from_raw(28, 28, data.image(i).to_vec())
                .unwrap()
                .save(class.join(format!("{i:04}.png")))
                .unwrap();
        }
    }
    root
}

#[test]
fn search_reads_an_image_folder_and_names_its_classes() {
    let dir = scratch("folder");
    let root = tiny_png_folder(&dir);
    let results = dir.join("results");
    let out = tiny_search(
        &results,
        "folder",
        &root,
        &[
            "--dataset",
            "folder",
            "--episodes",
            "2",
            "--warmup",
            "1",
            "--finetune-epochs",
            "0",
            "--no-baselines",
        ],
        0,
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("data: 120 train / 40 test images (folder-pngs-160)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("classes (label order): 00-T-shirt-top, 01-Trouser, 02-Pullover,"),
        "{stdout}"
    );
    let report = json(&results.join("folder").join("report.json"));
    assert_eq!(episode_rewards(&report).len(), 2);
    // The class names are kept in the report, in label order.
    let classes = report["classes"].as_array().expect("report.classes");
    assert_eq!(classes.len(), 10);
    assert_eq!(classes[1], "01-Trouser");
    // Every decision states its confidence: the answer's paired comparison.
    let confidence = &report["confidence"];
    assert_eq!(confidence["images"], report_validation_images(&report));
    assert!(
        confidence["interval_points"]
            .as_array()
            .is_some_and(|i| i.len() == 2)
    );
    // A broken image is refused by name, with exit code 1.
    let broken = std::fs::read_dir(root.join("test").join("03-Dress"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&broken, b"not a png").unwrap();
    let failed = tiny_search(&results, "folder", &root, &["--dataset", "folder"], 1);
    let stderr = text(&failed.stderr);
    let name = broken.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        stderr.contains(&name) && stderr.contains("refused image"),
        "{name}: {stderr}"
    );
}
