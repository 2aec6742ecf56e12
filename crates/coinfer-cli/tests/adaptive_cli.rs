//! Plans that follow the link, end to end on tiny settings: `coinfer plans` builds a plan set
//! (a tiny backbone and search, the default device, link RTT and edge), the set loads back
//! with every weight digest checked, `coinfer serve --plans` serves every edge half on one port
//! (a request tagged with a plan outside the set is refused with `PlanNotInSet`), and
//! `coinfer infer --plans --adaptive` rides a short outage on a traced link: every request is
//! answered, on the device while the link is down, and the client goes back to the edge once
//! it returns.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use burn::prelude::*;
use coinfer_automl::planset::PlanSet;
use coinfer_automl::runtime::{ClientConfig, ClientPlan, DeviceClient, ErrorCode, RuntimeError};

mod tiny_data;
use tiny_data::tiny_data;

const BIN: &str = env!("CARGO_BIN_EXE_coinfer");

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("coinfer-cli-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn expect_code(args: &[&str], code: i32) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("the binary runs");
    assert_eq!(
        out.status.code(),
        Some(code),
        "coinfer {args:?}\n--- stdout\n{}\n--- stderr\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// Kills the server when the test ends, also on failure.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    text(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn of_kind<'a>(lines: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|l| l["kind"] == kind).collect()
}

fn write_trace(path: &Path, json: &str) {
    std::fs::write(path, json).unwrap();
}

#[test]
fn a_plan_set_is_built_served_and_followed_through_an_outage() {
    let dir = scratch("plan-set");
    let data = tiny_data(&dir);
    let out = dir.join("set");
    expect_code(
        &[
            "plans",
            "--data-dir",
            data.to_str().unwrap(),
            "--results",
            dir.join("results").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--episodes",
            "4",
            "--backbone-epochs",
            "1",
            "--validation-images",
            "40",
            "--ae-ratios",
            "--spatial-ratios",
            "--refine-evaluations",
            "10",
            "--finetune-epochs",
            "1",
            "--rates-kbps",
            "5,20,100,1000,10000",
            "--rtts-ms",
            "20,300",
        ],
        0,
    );

    // The set: at 5 kbit/s and a 20 ms RTT the microcontroller alone is fastest, at 10 Mbit/s
    // a plan that uses the edge; with a 300 ms RTT nothing sent beats the device's ~113 ms.
    // Every grid point has its member, named by the intervals too.
    let set_path = out.join("set.json");
    let device = Device::flex();
    let deployed = PlanSet::deploy(&set_path, &device).unwrap();
    let set = &deployed.set;
    assert!(set.members.len() >= 2, "{set:?}");
    assert_eq!(set.rates_bps, [5e3, 20e3, 100e3, 1e6, 10e6]);
    assert_eq!(set.rtts_s, [0.02, 0.3]);
    let rates = set.rates_bps.len();
    assert_eq!(set.members[set.best_at[0]].kind, "device-only", "{set:?}");
    assert!(set.members[set.best_at[rates - 1]].remote, "{set:?}");
    assert!(
        set.best_at[rates..]
            .iter()
            .all(|&m| set.members[m].kind == "device-only"),
        "{set:?}"
    );
    for (i, &best) in set.best_at.iter().enumerate() {
        let (rtt, rate) = (set.rtts_s[i / rates], set.rates_bps[i % rates]);
        assert_eq!(
            set.member_for(rate, rtt),
            Some(best),
            "{rate} {rtt}: {set:?}"
        );
    }
    // Saved and loaded, the set is the same (and so is its digest).
    let copy = dir.join("copy.json");
    set.save(&copy).unwrap();
    assert_eq!(&PlanSet::load(&copy).unwrap(), set);
    // A set whose member was tampered with is refused, naming the file.
    let mut bad = set.clone();
    bad.members[0].digest = "0000".into();
    let bad_path = out.join("bad.json");
    bad.save(&bad_path).unwrap();
    let err = PlanSet::deploy(&bad_path, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("plan.json") && err.contains("0000"), "{err}");

    // serve --plans: every edge half on one port.
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--plans",
            set_path.to_str().unwrap(),
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
    assert!(line.starts_with("serving plan set "), "{line}");
    assert!(line.contains(&deployed.digest), "{line}");
    let addr = line.trim().rsplit(' ').next().unwrap().to_string();

    // A request tagged with a plan outside the set is refused, typed; the connection goes on.
    let remote = deployed
        .members
        .iter()
        .position(|m| m.edge.is_some())
        .unwrap();
    let member = &deployed.members[remote];
    let codec = member.edge.as_ref().unwrap().1.clone();
    let plans = vec![
        ClientPlan::remote(member.device.clone(), codec.clone(), member.plan.digest()).unwrap(),
        ClientPlan::remote(member.device.clone(), codec, "not-in-the-set").unwrap(),
    ];
    let mut client = DeviceClient::connect_set(
        &addr,
        plans,
        deployed.digest.clone(),
        ClientConfig::default(),
    )
    .unwrap();
    let input = member.device.spec().input.dims();
    let x = Tensor::<4>::zeros([1, input[0], input[1], input[2]], &device);
    match client.infer_with(1, x.clone()) {
        Err(RuntimeError::Remote { code, message, .. }) => {
            assert_eq!(code, ErrorCode::PlanNotInSet, "{message}");
        }
        other => panic!("a plan outside the set must be refused: {other:?}"),
    }
    let answer = client.infer_with(0, x).unwrap();
    assert_eq!(answer.batch, 1);
    drop(client);

    // infer --plans --adaptive on a link that is fast, then down for 10 requests, then fast.
    let trace = dir.join("outage.json");
    write_trace(
        &trace,
        r#"{"name": "short-outage", "clock": "requests", "outage_timeout_s": 0.2,
            "steps": [{"at": 0, "rate_bps": 1e7, "delay_s": 0.02},
                      {"at": 10, "rate_bps": 1e7, "delay_s": 0.02, "up": false},
                      {"at": 20, "rate_bps": 1e7, "delay_s": 0.02}]}"#,
    );
    let run = expect_code(
        &[
            "infer",
            "--plans",
            set_path.to_str().unwrap(),
            "--adaptive",
            "--emulate-device",
            "--trace",
            trace.to_str().unwrap(),
            "--server",
            &addr,
            "--n",
            "40",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        0,
    );
    let lines = json_lines(&run);
    let requests = of_kind(&lines, "request");
    assert_eq!(requests.len(), 40, "{}", text(&run.stdout));
    let summary = of_kind(&lines, "summary")[0];
    assert_eq!(summary["lost"], 0, "{summary}");
    let plan = |r: &serde_json::Value| r["plan"].as_str().unwrap_or("none").to_string();
    // Up: the edge; down: every request answered on the device.
    assert!(
        requests[..10].iter().all(|r| plan(r) != "device-only"),
        "{}",
        text(&run.stdout)
    );
    assert!(
        requests[10..20].iter().all(|r| plan(r) == "device-only"),
        "{}",
        text(&run.stdout)
    );
    assert!(requests[10]["failure"].is_string(), "{}", requests[10]);
    // Back up: the client probes, reconnects and returns to the edge.
    assert!(
        requests[20..].iter().any(|r| plan(r) != "device-only"),
        "{}",
        text(&run.stdout)
    );
    let switches = of_kind(&lines, "switch");
    assert!(
        switches
            .iter()
            .any(|s| s["to"] == "device-only" && s["link_up"] == false),
        "{switches:?}"
    );

    // The bench: the same set over a two-step trace; one summary per policy, none lost.
    let steps = dir.join("steps.json");
    write_trace(
        &steps,
        r#"{"name": "two-steps", "clock": "requests",
            "steps": [{"at": 0, "rate_bps": 5e3, "delay_s": 0.02},
                      {"at": 6, "rate_bps": 1e7, "delay_s": 0.02}]}"#,
    );
    let bench = expect_code(
        &[
            "adaptive-bench",
            "--plans",
            set_path.to_str().unwrap(),
            "--trace",
            steps.to_str().unwrap(),
            "--requests",
            "12",
            "--no-device-emulation",
            "--data-dir",
            data.to_str().unwrap(),
            "--out",
            dir.join("bench").to_str().unwrap(),
        ],
        0,
    );
    let lines = json_lines(&bench);
    let summaries = of_kind(&lines, "summary");
    assert_eq!(summaries.len(), set.members.len() + 2, "{lines:?}");
    for s in &summaries {
        assert_eq!(s["lost"], 0, "{s}");
        assert_eq!(s["requests"], 12, "{s}");
    }
    let oracle = summaries.iter().find(|s| s["policy"] == "oracle").unwrap();
    assert!(oracle["switches"].as_u64().unwrap() >= 1, "{oracle}");
    let svg = std::fs::read_to_string(dir.join("bench").join("two-steps.svg")).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("adaptive"),
        "an empty plot"
    );
    let rows = std::fs::read_to_string(dir.join("bench").join("two-steps.jsonl")).unwrap();
    assert_eq!(rows.lines().count(), 12 * (set.members.len() + 2));
}

#[test]
fn bad_plan_set_inputs_are_named_never_a_panic() {
    let dir = scratch("plan-set-bad");
    let missing = dir.join("missing.json");
    let missing = missing.to_str().unwrap();
    // A set file that is not there, or not a set: exit 1 naming the file.
    for command in [
        vec!["serve", "--plans", missing, "--addr", "127.0.0.1:0"],
        vec!["adaptive-bench", "--plans", missing, "--trace", missing],
    ] {
        let out = expect_code(&command, 1);
        assert!(
            text(&out.stderr).contains("missing.json"),
            "{}",
            text(&out.stderr)
        );
    }
    let not_a_set = dir.join("not-a-set.json");
    std::fs::write(&not_a_set, r#"{"members": 3}"#).unwrap();
    let out = expect_code(
        &[
            "serve",
            "--plans",
            not_a_set.to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
        ],
        1,
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("not-a-set.json") && stderr.contains("not a plan set"),
        "{stderr}"
    );
    // Usage errors: --plans without --adaptive, --plan with --plans, --adaptive alone.
    for command in [
        vec!["infer", "--plans", missing],
        vec!["infer", "--plan", missing, "--plans", missing, "--adaptive"],
        vec!["infer", "--adaptive"],
        vec!["serve"],
    ] {
        expect_code(&command, 2);
    }
    // A trace that is not a trace is named with its field.
    let trace = dir.join("bad-trace.json");
    std::fs::write(
        &trace,
        r#"{"name": "t", "clock": "requests", "steps": [{"at": 1, "rate_bps": 1e4, "delay_s": 0}]}"#,
    )
    .unwrap();
    let err = coinfer_automl::runtime::LinkTrace::load(&trace)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad-trace.json") && err.contains("first step"),
        "{err}"
    );
}
