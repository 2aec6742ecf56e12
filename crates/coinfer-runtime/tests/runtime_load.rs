//! Load: 32 concurrent device clients × 50 requests each against one edge server. Every request
//! is answered exactly once, with its own logits; throughput and latency are printed, not
//! asserted.

mod runtime_common;

use std::collections::HashSet;
use std::time::Instant;

use burn::prelude::*;
use coinfer_codec::CodecId;
use coinfer_runtime::ServerConfig;
use runtime_common::*;

const CLIENTS: usize = 32;
const REQUESTS: usize = 50;

#[test]
fn thirty_two_clients_fifty_requests_each_all_answered_correctly() {
    let fx = fixture();
    let codec = codec(CodecId::quant(8, true));
    // One distinct input per client slot; client `t` walks them with stride 7, so concurrent
    // requests carry different inputs and a crossed reply would show up as wrong logits.
    let inputs: Vec<Vec<f32>> = (0..CLIENTS as u64)
        .map(|i| input_values(1000 + i, 1))
        .collect();
    let tensor = |values: &Vec<f32>| {
        Tensor::<4>::from_data(TensorData::new(values.clone(), [1, 1, 28, 28]), &fx.device)
    };
    let expected: Vec<Vec<f32>> = inputs
        .iter()
        .map(|v| expected_logits(&fx, codec.as_ref(), tensor(v)))
        .collect();

    let server = spawn(&fx, codec.clone(), ServerConfig::default());
    let addr = server.local_addr();
    let start = Instant::now();
    let per_client: Vec<(Vec<u64>, Vec<f64>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|t| {
                let (fx, codec, inputs, expected) = (&fx, codec.clone(), &inputs, &expected);
                scope.spawn(move || {
                    let mut client = connect(fx, addr, codec).expect("client connects");
                    let mut ids = Vec::with_capacity(REQUESTS);
                    let mut latencies = Vec::with_capacity(REQUESTS);
                    for i in 0..REQUESTS {
                        let k = (t * 7 + i) % CLIENTS;
                        let x = Tensor::<4>::from_data(
                            TensorData::new(inputs[k].clone(), [1, 1, 28, 28]),
                            &fx.device,
                        );
                        let result = client.infer(x).expect("request answered");
                        assert_close(&result.logits, &expected[k], 1e-5, "load");
                        ids.push(result.request_id);
                        latencies.push(result.timing.total_s);
                    }
                    client.close();
                    (ids, latencies)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let stats = server.shutdown().expect("no server thread panicked");

    for (ids, _) in &per_client {
        let unique: HashSet<u64> = ids.iter().copied().collect();
        assert_eq!(
            unique.len(),
            REQUESTS,
            "every request id answered exactly once"
        );
        assert_eq!(ids, &(1..=REQUESTS as u64).collect::<Vec<_>>());
    }
    assert_eq!(stats.results, (CLIENTS * REQUESTS) as u64);
    assert_eq!((stats.errors, stats.panics, stats.refused), (0, 0, 0));

    let mut latencies: Vec<f64> = per_client.into_iter().flat_map(|(_, l)| l).collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize] * 1e3;
    println!(
        "load: {CLIENTS}×{REQUESTS} requests in {elapsed:.2} s = {:.0} req/s; latency p50 {:.1} ms, p95 {:.1} ms",
        (CLIENTS * REQUESTS) as f64 / elapsed,
        pct(0.5),
        pct(0.95)
    );
}
