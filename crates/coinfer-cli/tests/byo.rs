//! Bring your own device and data, end to end through the `coinfer` binary: measure a device
//! profile with `coinfer profile`, then search `resnet18-cifar` on real CIFAR-10 records with
//! that profile, with tiny settings (the mechanics, not the accuracy).

use std::path::PathBuf;
use std::process::Command;

/// `shared/data/<sub>`: `$COINFER_SHARED_DATA/<sub>` when that variable is set (a checkout
/// elsewhere on disk), else `../shared/data/<sub>` next to the repository. The tests that need
/// it are `#[ignore]`d (a fresh clone has no `../shared`) and `.ci/run` runs them by name; run
/// one by hand, they fail with what to install when the folder is absent, never pass unseen.
fn shared_data(sub: &str) -> PathBuf {
    let root = std::env::var_os("COINFER_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let dir = root.join(sub);
    assert!(
        dir.is_dir(),
        "{} is absent: this test reads the project's shared data (README, \"Tests that need \
         data outside the repository\"); put it at ../shared/data next to the repository or set \
         COINFER_SHARED_DATA (Fashion-MNIST: Debian package dataset-fashion-mnist, folder \
         /usr/share/datasets/fashion-mnist)",
        dir.display()
    );
    dir
}

fn coinfer(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_coinfer"))
        .args(args)
        .output()
        .expect("the coinfer binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "coinfer {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
#[ignore = "needs ../shared/data/cifar10-sample (run by .ci/run; README)"]
fn measured_profile_then_cifar10_search_on_the_sample() {
    let sample = shared_data("cifar10-sample");
    let work = std::env::temp_dir().join(format!("coinfer-byo-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let profile = work.join("my-device.json");
    let profile = profile.to_str().unwrap();
    let lines = coinfer(&[
        "profile",
        "--model",
        "resnet18-cifar",
        "--out",
        profile,
        "--warmup",
        "1",
        "--repeats",
        "3",
    ]);
    // One JSON line per block plus the total.
    let rows: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows.len() > 2, "{lines}");
    assert_eq!(rows.last().unwrap()["block"], "all");

    let results = work.join("results");
    let out = coinfer(&[
        "search",
        "--dataset",
        "cifar10",
        "--data-dir",
        sample.to_str().unwrap(),
        "--model",
        "resnet18-cifar",
        "--device",
        profile,
        "--results",
        results.to_str().unwrap(),
        "--run",
        "cifar",
        "--backbone-epochs",
        "1",
        "--validation-images",
        "10",
        "--episodes",
        "2",
        "--warmup",
        "1",
        "--ae-ratios",
        "--spatial-ratios",
        "--refine-evaluations",
        "5",
        "--finetune-epochs",
        "0",
        "--no-baselines",
        "--exhaustive-levels",
        "0",
    ]);
    assert!(
        out.contains("data: 16 train / 4 test images (cifar10-20)"),
        "{out}"
    );
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(results.join("cifar").join("report.json")).unwrap(),
    )
    .unwrap();
    assert!(report.is_object());
    // The backbone cache is labelled with the data set, not "fashion-mnist-full".
    let cached: Vec<String> = std::fs::read_dir(results.join("cache").join("flex"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        cached
            .iter()
            .any(|n| n.starts_with("resnet18-cifar-cifar10-20-e1-s1-v10")),
        "{cached:?}"
    );
    std::fs::remove_dir_all(&work).unwrap();
}
