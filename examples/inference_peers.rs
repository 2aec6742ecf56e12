//! coinfer's inference form (CPU kernels) and burn (flex) side by side with PyTorch and ONNX Runtime on the default backbone,
//! interleaved: forward at batch 1 and 64 for each thread count, and one Adam training step at
//! batch 64 for each training thread count (coinfer's training kernels, burn-flex ops, PyTorch).
//!
//! ```text
//! cargo run --release --example inference_peers -- --json
//! ```
//!
//! The example exports the network (spec and weights, JSON) and drives
//! `benches/peers/inference_peers.py` as a worker, which rebuilds the same network in each peer
//! framework it finds installed and checks its logits against burn's first. Every round times
//! `--iters` forwards (or training steps) of every framework in turn, so fast and slow phases of
//! the machine hit all of them alike; the statistics pool the samples of all rounds.
//!
//! Each framework's turn at the training step is `--train-steps` consecutive steps (3), after
//! a pause that lets the other framework's threads go idle. By default every step is recorded,
//! the first of a turn included, which pays for caches, allocator and worker threads left cold
//! by the other frameworks' turns. `--train-warmup K` runs and drops the first `K` steps of
//! every turn, for every framework alike, to time the steady state of a training loop:
//!
//! ```text
//! cargo run --release --example inference_peers -- --json --no-infer --train-steps 8 --train-warmup 2
//! ```
//!
//! One JSON object per line on stdout with `--json` (a markdown table without), progress and
//! skipped peers on stderr:
//! `{"framework": "coinfer", "threads": 1, "batch": 1, "median_ms": .., "p10_ms": .., "p90_ms": ..}`
//! (`coinfer` runs the [`InferenceNetwork`] as deployed, on its CPU kernels; `burn-flex` the
//! same folded network as burn-flex ops, i.e. the gain of the kernels; `burn-flex-unfolded` the
//! same weights with batch norm as separate ops, i.e. the gain of folding) and `{"framework": .., "phase": "train", "threads": .., "batch": 64, "median_ms": .., ..}`
//! (`coinfer`: the training step with its convolutions and batch norms on coinfer-kernels;
//! `burn-flex`: the same step on burn-flex ops; `torch`: PyTorch eager). Ratio lines follow:
//! `{"ratio": "coinfer/torch", "phase": "train", "threads": 1, ..}`, and the kernels' 2-thread
//! speed-up as `{"ratio": "coinfer@1/coinfer", "threads": 2, ..}`.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use burn::module::Module;
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Distribution;
use clap::Parser;
use coinfer_kernels::TrainingOps;
use coinfer_split::model::Block;
use coinfer_split::{BlockSpec, Network, Threads, inference::InferenceNetwork, zoo};
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(about = "burn vs PyTorch vs ONNX Runtime on resnet-mini, interleaved")]
struct Args {
    /// One JSON object per line on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// Interleaved rounds.
    #[arg(long, default_value_t = 15)]
    rounds: usize,
    /// Thread counts to measure (comma separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2])]
    threads: Vec<usize>,
    /// Batch sizes of the forward pass (comma separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 64])]
    batches: Vec<usize>,
    /// Thread counts of the training step (comma separated; every framework).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2])]
    train_threads: Vec<usize>,
    /// Consecutive training steps per framework and round (every framework alike).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    train_steps: u64,
    /// Of each framework's consecutive steps in a round, this many first ones are run but not
    /// recorded (every framework alike): 0 times the steps as they come after the other
    /// frameworks' turns and a pause, 1 or more the steady state of a training loop.
    #[arg(long, default_value_t = 0)]
    train_warmup: u64,
    /// Skip the training step.
    #[arg(long)]
    no_train: bool,
    /// Skip the forward passes (time training only, e.g. under a profiler).
    #[arg(long)]
    no_infer: bool,
    /// Python interpreter for the peers.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Peer worker script.
    #[arg(long, default_value = "benches/peers/inference_peers.py")]
    peer_script: PathBuf,
    /// Where to write the exported network (JSON).
    #[arg(long, default_value = "target/inference_peers_net.json")]
    export: PathBuf,
}

/// Pause before each framework's training steps (not timed).
const SETTLE_MS: u64 = 300;

/// Forwards per round: enough work per round to dwarf the timer at batch 1.
fn iters_for(batch: usize) -> usize {
    if batch >= 32 { 3 } else { 30 }
}

fn tensor_json<const D: usize>(t: Tensor<D>) -> Value {
    let shape = t.dims().to_vec();
    let data = t.into_data().try_to_vec::<f32>().expect("f32 tensor");
    json!({"shape": shape, "data": data})
}

fn conv_json(conv: &Conv2d, stride: usize, padding: usize) -> Value {
    json!({"weight": tensor_json(conv.weight.val()), "stride": stride, "padding": padding})
}

fn bn_json(bn: &BatchNorm) -> Value {
    json!({
        "gamma": tensor_json(bn.gamma.val()),
        "beta": tensor_json(bn.beta.val()),
        "mean": tensor_json(bn.running_mean.value()),
        "var": tensor_json(bn.running_var.value()),
        "eps": bn.epsilon,
    })
}

/// The network as plain JSON for the peer script: one entry per block.
fn export(net: &Network, check_input: Tensor<4>) -> Value {
    let blocks: Vec<Value> = net
        .spec()
        .blocks
        .iter()
        .zip(&net.module().blocks)
        .map(|(spec, block)| match (spec, block) {
            (
                BlockSpec::ConvBnRelu {
                    stride, padding, ..
                },
                Block::ConvBnRelu(b),
            ) => json!({"kind": "conv_bn_relu", "conv": conv_json(&b.conv, *stride, *padding), "bn": bn_json(&b.bn)}),
            (BlockSpec::BasicBlock { stride, .. }, Block::Basic(b)) => json!({
                "kind": "basic",
                "conv1": conv_json(&b.conv1, *stride, 1), "bn1": bn_json(&b.bn1),
                "conv2": conv_json(&b.conv2, 1, 1), "bn2": bn_json(&b.bn2),
                "shortcut": b.shortcut.as_ref().map(|p| json!({"conv": conv_json(&p.conv, *stride, 0), "bn": bn_json(&p.bn)})),
            }),
            (
                BlockSpec::MaxPool {
                    kernel,
                    stride,
                    padding,
                },
                _,
            ) => json!({"kind": "max_pool", "kernel": kernel, "stride": stride, "padding": padding}),
            (
                BlockSpec::AvgPool {
                    kernel,
                    stride,
                    padding,
                },
                _,
            ) => json!({"kind": "avg_pool", "kernel": kernel, "stride": stride, "padding": padding}),
            (BlockSpec::GlobalAvgPool, _) => json!({"kind": "global_avg_pool"}),
            (BlockSpec::Flatten, _) => json!({"kind": "flatten"}),
            (BlockSpec::Linear { relu, .. }, Block::Linear(b)) => json!({
                "kind": "linear",
                "weight": tensor_json(b.linear.weight.val()),
                "bias": b.linear.bias.as_ref().map(|bias| tensor_json(bias.val())),
                "relu": relu,
            }),
            (spec, _) => panic!("module block does not match spec block {spec:?}"),
        })
        .collect();
    let logits = net.logits(check_input.clone()).expect("input fits");
    json!({
        "input": net.spec().input.dims(),
        "blocks": blocks,
        "check_input": tensor_json(check_input),
        "check_logits": tensor_json(logits),
    })
}

/// The Python worker (see the peer script's docs for the protocol).
struct PeerWorker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl PeerWorker {
    fn start(python: &str, script: &PathBuf) -> Option<PeerWorker> {
        let mut child = Command::new(python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                eprintln!(
                    "peers skipped: cannot start `{python} {}`: {e}",
                    script.display()
                )
            })
            .ok()?;
        let stdin = child.stdin.take()?;
        let stdout = BufReader::new(child.stdout.take()?);
        Some(PeerWorker {
            child,
            stdin,
            stdout,
        })
    }

    fn ask(&mut self, request: Value) -> Result<Value, String> {
        writeln!(self.stdin, "{request}").map_err(|e| format!("peer worker: {e}"))?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| format!("peer worker: {e}"))?;
        let reply: Value = serde_json::from_str(&line)
            .map_err(|e| format!("peer worker replied {line:?} to {request}: {e}"))?;
        match reply.get("error") {
            Some(error) => Err(format!("peer worker failed on {request}: {error}")),
            None => Ok(reply),
        }
    }

    fn samples(&mut self, request: Value) -> Result<Vec<f64>, String> {
        let reply = self.ask(request)?;
        reply["samples_ms"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .ok_or_else(|| format!("peer worker reply without samples: {reply}"))
    }
}

impl Drop for PeerWorker {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"cmd": "quit"}));
        let _ = self.child.wait();
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// One row of results: who, what, and the pooled samples.
struct Row {
    framework: String,
    phase: &'static str,
    threads: usize,
    batch: usize,
    samples: Vec<f64>,
}

impl Row {
    fn stats(&self) -> (f64, f64, f64) {
        let mut s = self.samples.clone();
        s.sort_by(f64::total_cmp);
        (quantile(&s, 0.5), quantile(&s, 0.1), quantile(&s, 0.9))
    }
}

fn time_ms(iters: usize, mut run: impl FnMut()) -> Vec<f64> {
    (0..iters)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect()
}

/// One burn training step (Adam, cross-entropy, whole network), as the main job trains.
struct BurnTrainer {
    module: coinfer_split::model::NetModule,
    optimizer: ModuleOptimizer,
    x: Tensor<4>,
    labels: Tensor<1, Int>,
}

impl BurnTrainer {
    fn new(net: &Network, batch: usize, device: &Device) -> BurnTrainer {
        let ad = device.clone().autodiff();
        let module = net.module().clone().to_device(&ad).train();
        let optimizer = AdamConfig::new()
            .with_weight_decay(Some(burn::optim::decay::WeightDecayConfig::new(1e-4)))
            .init();
        let [c, h, w] = net.spec().input.dims();
        let x = Tensor::<4>::random([batch, c, h, w], Distribution::Normal(0.0, 1.0), &ad);
        let labels = Tensor::<1, Int>::from_data(
            TensorData::new(
                (0..batch as i64).map(|i| i % 10).collect::<Vec<i64>>(),
                [batch],
            ),
            &ad,
        );
        BurnTrainer {
            module,
            optimizer,
            x,
            labels,
        }
    }

    fn step(&mut self) {
        let loss_fn = CrossEntropyLossConfig::new().init(&self.x.device());
        let y = self.module.forward(self.x.clone());
        let loss = loss_fn.forward(y, self.labels.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &self.module);
        self.module = self.optimizer.step(2e-3, self.module.clone(), grads);
        let _ = loss.into_scalar::<f32>();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.train_warmup >= args.train_steps {
        return Err(format!(
            "--train-warmup {} leaves none of --train-steps {} to record",
            args.train_warmup, args.train_steps
        )
        .into());
    }
    let (train_steps, train_warmup) = (args.train_steps as usize, args.train_warmup as usize);
    let device = Device::flex();
    device.seed(1);
    let net = Network::new(zoo::resnet_mini(10), &device)?.valid();
    let fast = InferenceNetwork::from_network(&net)?;
    let [c, h, w] = net.spec().input.dims();

    let check = Tensor::<4>::random([4, c, h, w], Distribution::Normal(0.0, 1.0), &device);
    if let Some(parent) = args.export.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.export, export(&net, check).to_string())?;

    let mut peers = PeerWorker::start(&args.python, &args.peer_script);
    let mut frameworks: Vec<String> = Vec::new();
    if let Some(worker) = peers.as_mut() {
        let reply =
            worker.ask(json!({"cmd": "load", "weights": args.export.display().to_string()}))?;
        for (name, why) in reply["skipped"].as_object().into_iter().flatten() {
            eprintln!("peer {name} skipped: {}", why.as_str().unwrap_or_default());
        }
        for (name, diff) in reply["max_abs_diff"].as_object().into_iter().flatten() {
            let diff = diff.as_f64().unwrap_or(f64::NAN);
            eprintln!("peer {name}: max |logit − burn's| = {diff:.2e}");
            if diff.is_nan() || diff >= 1e-3 {
                return Err(format!("peer {name} disagrees with burn by {diff}").into());
            }
        }
        frameworks = reply["frameworks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(str::to_string))
            .collect();
    }

    let mut rows: Vec<Row> = Vec::new();
    let row =
        |rows: &mut Vec<Row>, framework: &str, phase, threads, batch, samples: Vec<f64>| match rows
            .iter_mut()
            .find(|r| {
                r.framework == framework
                    && r.phase == phase
                    && r.threads == threads
                    && r.batch == batch
            }) {
            Some(r) => r.samples.extend(samples),
            None => rows.push(Row {
                framework: framework.to_string(),
                phase,
                threads,
                batch,
                samples,
            }),
        };
    let batches = if args.no_infer {
        &[][..]
    } else {
        &args.batches[..]
    };
    let inputs: Vec<(usize, Tensor<4>)> = batches
        .iter()
        .map(|&b| {
            (
                b,
                Tensor::random([b, c, h, w], Distribution::Normal(0.0, 1.0), &device),
            )
        })
        .collect();
    let pools: Vec<(usize, Threads)> = args
        .threads
        .iter()
        .map(|&t| Threads::new(t).map(|pool| (t, pool)))
        .collect::<Result<_, _>>()?;
    let train_pools: Vec<(usize, Threads)> = args
        .train_threads
        .iter()
        .map(|&t| Threads::new(t).map(|pool| (t, pool)))
        .collect::<Result<_, _>>()?;
    // One trainer per op set, each following its own trajectory.
    let mut trainers = (!args.no_train).then(|| {
        [
            (
                "coinfer",
                TrainingOps::Kernels,
                BurnTrainer::new(&net, 64, &device),
            ),
            (
                "burn-flex",
                TrainingOps::Burn,
                BurnTrainer::new(&net, 64, &device),
            ),
        ]
    });
    let torch_trains = frameworks.iter().any(|f| f == "torch") && !args.no_train;

    // One warm-up round, not recorded.
    for round in 0..=args.rounds {
        let record = round > 0;
        eprintln!("round {round}/{}", args.rounds);
        for (threads, pool) in &pools {
            for (batch, x) in &inputs {
                let iters = if record { iters_for(*batch) } else { 2 };
                let samples = pool.install(|| {
                    time_ms(iters, || {
                        let _ = fast.forward_unchecked(x.clone()).into_data();
                    })
                });
                if record {
                    row(&mut rows, "coinfer", "infer", *threads, *batch, samples);
                }
                // The same folded network as burn-flex ops: the gain of the CPU kernels.
                let samples = pool.install(|| {
                    time_ms(iters, || {
                        let _ = fast.forward_burn_ops(x.clone()).into_data();
                    })
                });
                if record {
                    row(&mut rows, "burn-flex", "infer", *threads, *batch, samples);
                }
                // The training form in eval mode (batch norm as separate ops): the gain of folding.
                let samples = pool.install(|| {
                    time_ms(iters, || {
                        let _ = net.forward(x.clone()).expect("input fits").into_data();
                    })
                });
                if record {
                    row(
                        &mut rows,
                        "burn-flex-unfolded",
                        "infer",
                        *threads,
                        *batch,
                        samples,
                    );
                }
                for framework in &frameworks {
                    let samples = peers.as_mut().expect("frameworks come from the worker").samples(
                        json!({"cmd": "infer", "framework": framework, "threads": threads, "batch": batch, "iters": iters}),
                    )?;
                    if record {
                        row(&mut rows, framework, "infer", *threads, *batch, samples);
                    }
                }
            }
        }
        for (threads, pool) in &train_pools {
            for (framework, ops, trainer) in trainers.iter_mut().flatten() {
                ops.set_global();
                // Let the other framework's worker threads (PyTorch's OpenMP threads spin
                // after a step) go idle first: on two cores they would take one from this step.
                std::thread::sleep(std::time::Duration::from_millis(SETTLE_MS));
                let mut samples = pool.install(|| time_ms(train_steps, || trainer.step()));
                samples.drain(..train_warmup);
                if record {
                    row(&mut rows, framework, "train", *threads, 64, samples);
                }
            }
            TrainingOps::Kernels.set_global();
            if torch_trains {
                std::thread::sleep(std::time::Duration::from_millis(SETTLE_MS));
                let mut samples = peers.as_mut().expect("torch is a peer").samples(
                    json!({"cmd": "train", "threads": threads, "batch": 64, "iters": train_steps}),
                )?;
                samples.drain(..train_warmup.min(samples.len()));
                if record {
                    row(&mut rows, "torch", "train", *threads, 64, samples);
                }
            }
        }
    }

    if !args.json {
        println!("| framework | phase | threads | batch | median (ms) | p10 (ms) | p90 (ms) |");
        println!("|---|---|---|---|---|---|---|");
    }
    for r in &rows {
        let (median, p10, p90) = r.stats();
        if args.json {
            let mut line = json!({
                "framework": r.framework, "threads": r.threads, "batch": r.batch,
                "median_ms": round3(median), "p10_ms": round3(p10), "p90_ms": round3(p90),
            });
            if r.phase == "train" {
                line["phase"] = json!("train");
            }
            println!("{line}");
        } else {
            println!(
                "| {} | {} | {} | {} | {median:.3} | {p10:.3} | {p90:.3} |",
                r.framework, r.phase, r.threads, r.batch
            );
        }
    }
    // The issue's targets as ratios of medians of this run: the deployed form against each
    // peer at the same threads and batch, and burn's training step against PyTorch's.
    let median_of = |framework: &str, phase: &str, threads: usize, batch: usize| {
        rows.iter()
            .find(|r| {
                r.framework == framework
                    && r.phase == phase
                    && r.threads == threads
                    && r.batch == batch
            })
            .map(|r| r.stats().0)
    };
    let mut ratios = Vec::new();
    for r in rows
        .iter()
        .filter(|r| r.framework == "coinfer" && r.phase == "infer")
    {
        for peer in ["onnxruntime", "torch"] {
            if let Some(theirs) = median_of(peer, "infer", r.threads, r.batch) {
                ratios.push((
                    "coinfer",
                    peer,
                    "infer",
                    r.threads,
                    r.batch,
                    r.stats().0 / theirs,
                ));
            }
        }
    }
    for &threads in &args.train_threads {
        for ours in ["coinfer", "burn-flex"] {
            if let (Some(a), Some(b)) = (
                median_of(ours, "train", threads, 64),
                median_of("torch", "train", threads, 64),
            ) {
                ratios.push((ours, "torch", "train", threads, 64, a / b));
            }
        }
        // The kernels' speed-up over their own 1-thread step.
        if let (Some(one), Some(this)) = (
            median_of("coinfer", "train", 1, 64),
            median_of("coinfer", "train", threads, 64),
        ) && threads > 1
        {
            ratios.push(("coinfer@1", "coinfer", "train", threads, 64, one / this));
        }
    }
    for (ours, peer, phase, threads, batch, ratio) in ratios {
        if args.json {
            println!(
                "{}",
                json!({"ratio": format!("{ours}/{peer}"), "phase": phase, "threads": threads,
                       "batch": batch, "value": round3(ratio)})
            );
        } else {
            println!("{ours}/{peer}, {phase}, {threads} thread(s), batch {batch}: {ratio:.2}×");
        }
    }
    Ok(())
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
