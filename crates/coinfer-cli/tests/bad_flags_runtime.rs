//! Every numeric flag of `coinfer serve`, `infer` and `search` with bad values, and plans that
//! do not fit their networks: the binary exits with 2 (usage) or 1 (error) and names the
//! culprit, never 101 (a panic) and never starts serving or training.

mod runtime_plan;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coinfer_automl::SplitPlan;
use runtime_plan::{scratch, write_plan};

/// Runs `coinfer args` (killed after 120 s) and returns its exit code and stderr.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_coinfer"))
        .args(args)
        .env_remove("COINFER_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the coinfer binary starts");
    let limit = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `coinfer <base> <flag>=<value>` fails with 1 or 2 and names the flag, or `mention` (the
/// option behind it, for values that parse but are out of range), on stderr.
fn refused(base: &[&str], flag: &str, value: &str, mention: &str) {
    let pair = format!("{flag}={value}");
    let mut args: Vec<&str> = base.to_vec();
    args.push(&pair);
    let (code, stderr) = run(&args);
    assert!(
        matches!(code, Some(1 | 2)),
        "{args:?}: exit {code:?} (expected 1 or 2), stderr:\n{stderr}"
    );
    assert!(
        stderr.contains(flag) || stderr.contains(mention),
        "{args:?}: stderr names neither `{flag}` nor `{mention}`:\n{stderr}"
    );
}

#[test]
fn serve_refuses_every_bad_numeric_flag() {
    let dir = scratch("serve");
    let plan = write_plan(&dir);
    let plan = plan.to_str().unwrap();
    let base = ["serve", "--plan", plan, "--addr", "127.0.0.1:0"];
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "--read-timeout-s",
            &["-1", "nan", "inf", "0", "1e300", "x"],
            "--read-timeout-s",
        ),
        (
            "--frame-timeout-s",
            &["-1", "nan", "inf", "0"],
            "--frame-timeout-s",
        ),
        (
            "--hello-timeout-s",
            &["-1", "NaN", "inf", "0"],
            "--hello-timeout-s",
        ),
        (
            "--batch-window-ms",
            &["-5", "nan", "inf", "1e300"],
            "--batch-window-ms",
        ),
        ("--max-batch", &["0", "-1", "1.5"], "max_batch"),
        (
            "--max-request-batch",
            &["0", "-3", "99999999999"],
            "max_request_batch",
        ),
        ("--max-connections", &["0", "-1"], "max_connections"),
        ("--max-unauthenticated", &["0", "x"], "max_unauthenticated"),
        ("--max-in-flight-mib", &["0", "-1"], "max_in_flight"),
        ("--token", &[""], "token"),
    ];
    for (flag, values, mention) in cases {
        for value in *values {
            refused(&base, flag, value, mention);
        }
    }
    let long_token = "t".repeat(300);
    refused(&base, "--token", &long_token, "token");
    refused(
        &base,
        "--max-in-flight-mib",
        "18446744073709551615",
        "max-in-flight",
    );
    refused(&["serve", "--plan", plan], "--addr", "256.1.1.1:1", "bind");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn infer_refuses_every_bad_numeric_flag() {
    let dir = scratch("infer");
    let plan = write_plan(&dir);
    let plan = plan.to_str().unwrap();
    // Port 9 on loopback: nothing listens, so a flag that slipped through fails on connect
    // (exit 1) but with the wrong message.
    let base = ["infer", "--plan", plan, "--server", "127.0.0.1:9"];
    for value in ["inf", "1e300", "-1", "nan", "x"] {
        refused(&base, "--delay-ms", value, "--delay-ms");
    }
    for value in ["0", "-1", "x", "1e3"] {
        refused(&base, "--n", value, "--n");
    }
    for value in ["0", "-1", "nan", "1e400", "inf", "fastMbit"] {
        refused(&base, "--rate", value, "--rate");
    }
    for value in ["-1", "x"] {
        refused(&base, "--retries", value, "--retries");
    }
    refused(&base, "--token", "", "token");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn search_refuses_every_bad_numeric_flag_before_training() {
    let dir = scratch("search");
    let results = dir.join("results");
    let results = results.to_str().unwrap();
    let base = ["search", "--results", results, "--run", "bad"];
    let cases: &[(&str, &[&str])] = &[
        ("--episodes", &["0", "-1", "x"]),
        ("--warmup", &["-1", "x"]),
        ("--seed", &["-1", "1.5"]),
        ("--validation-images", &["0", "-5"]),
        ("--ae-ratios", &["0", "-2", "x"]),
        ("--ae-epochs", &["0", "-1"]),
        ("--backbone-epochs", &["0", "-1"]),
        ("--finetune-epochs", &["-1", "x"]),
        ("--refine-evaluations", &["-1", "x"]),
        ("--spatial-ratios", &["0", "-2", "x"]),
        ("--tolerance-points", &["x"]),
        ("--exhaustive-levels", &["-1", "1e9"]),
        ("--budget-ms", &["nan", "-1", "inf", "0", "x"]),
    ];
    for (flag, values) in cases {
        for value in *values {
            refused(&base, flag, value, flag);
        }
    }
    // Nothing was written for the refused runs.
    assert!(!dir.join("results").join("bad").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_plan_whose_split_does_not_fit_its_halves_is_refused_by_serve_and_infer() {
    let dir = scratch("split99");
    let plan_path = write_plan(&dir);
    let mut plan = SplitPlan::load(&plan_path).unwrap();
    plan.split = 99;
    plan.save(&plan_path).unwrap();
    let plan = plan_path.to_str().unwrap();
    for base in [
        &["serve", "--addr", "127.0.0.1:0"][..],
        &["infer", "--server", "127.0.0.1:9"][..],
    ] {
        refused(base, "--plan", plan, "split 99");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_search_refused_after_profiling_writes_nothing_into_an_existing_run() {
    use coinfer_automl::prelude::*;
    let dir = scratch("search-run");
    let backbone = dir.join("backbone.bin");
    Network::new(zoo::resnet_mini(10), &Device::flex())
        .unwrap()
        .save(&backbone)
        .unwrap();
    let run = dir.join("results").join("earlier");
    std::fs::create_dir_all(&run).unwrap();
    let profile = run.join("profile-this-machine.json");
    std::fs::write(&profile, "the earlier run's profile").unwrap();
    let results = dir.join("results");
    let base = [
        "search",
        "--results",
        results.to_str().unwrap(),
        "--run",
        "earlier",
        "--backbone",
        backbone.to_str().unwrap(),
    ];
    refused(&base, "--link", "no-such-link", "no-such-link");
    assert_eq!(
        std::fs::read_to_string(&profile).unwrap(),
        "the earlier run's profile"
    );
    assert_eq!(std::fs::read_dir(&run).unwrap().count(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `base` followed by `extra`.
fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    base.iter().chain(extra).copied().collect()
}

#[test]
fn tls_flags_with_missing_or_unusable_files_are_named() {
    let dir = scratch("tls-flags");
    let plan = write_plan(&dir);
    let plan = plan.to_str().unwrap();
    let missing = dir.join("missing.pem");
    let missing = missing.to_str().unwrap();
    // The plan file exists but holds no PEM: it stands for any file that is not a certificate.
    let serve = ["serve", "--plan", plan, "--addr", "127.0.0.1:0"];
    refused(
        &with(&serve, &["--tls-key", plan]),
        "--tls-cert",
        missing,
        "--tls-cert",
    );
    refused(
        &with(&serve, &["--tls-key", plan]),
        "--tls-cert",
        plan,
        "no certificate",
    );
    refused(
        &with(&serve, &["--tls-cert", plan]),
        "--tls-key",
        missing,
        "--tls-key",
    );
    refused(
        &with(&serve, &["--tls-cert", plan, "--tls-key", plan]),
        "--tls-client-ca",
        missing,
        "--tls-client-ca",
    );
    // A certificate without its key (and a client CA without a certificate) is a usage error.
    refused(&serve, "--tls-cert", plan, "--tls-key");
    refused(&serve, "--tls-client-ca", plan, "--tls-cert");

    let infer = ["infer", "--plan", plan, "--server", "127.0.0.1:9"];
    refused(&infer, "--tls-ca", missing, "--tls-ca");
    refused(&infer, "--tls-ca", plan, "no certificate");
    refused(
        &with(&infer, &["--tls-ca", plan, "--tls-client-key", plan]),
        "--tls-client-cert",
        missing,
        "--tls-client-cert",
    );
    refused(
        &with(&infer, &["--tls-ca", plan, "--tls-client-cert", plan]),
        "--tls-client-key",
        missing,
        "--tls-client-key",
    );
    refused(
        &with(&infer, &["--tls-ca", plan]),
        "--tls-server-name",
        "not a name!",
        "--tls-server-name",
    );
    refused(&infer, "--tls-server-name", "edge", "--tls-ca");
    refused(
        &with(&infer, &["--tls-ca", plan]),
        "--tls-client-cert",
        plan,
        "--tls-client-key",
    );
    let _ = std::fs::remove_dir_all(&dir);
}
