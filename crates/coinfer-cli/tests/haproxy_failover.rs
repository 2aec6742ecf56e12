//! Scale-out behind an existing L4 load balancer: HAProxy in TCP mode with health checks in
//! front of three `coinfer serve` processes (loopback only), 32 device clients × 200
//! requests, one server killed (SIGKILL) mid-load. Every request must be answered (the clients
//! reconnect through HAProxy and retry); the failover time is printed as a JSON line.
//!
//! Needs the `haproxy` binary (Debian package `haproxy`), so it is `#[ignore]`d: `.ci/run`
//! installs haproxy and runs it by name (`cargo test --release -p coinfer-cli --test
//! haproxy_failover -- --ignored`). Without haproxy it fails saying what to install.

mod runtime_plan;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use burn::prelude::Tensor;
use coinfer_automl::SplitPlan;
use coinfer_automl::prelude::*;
use coinfer_automl::runtime::{ClientConfig, DeviceClient};
use runtime_plan::{scratch, write_plan};

const SERVERS: usize = 3;
const CLIENTS: usize = 32;
const REQUESTS: usize = 200;

/// Kills the child when dropped (a failing assertion must not leave processes behind).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Fails, saying what to install, when `haproxy` is not on the `PATH`.
fn require_haproxy() {
    let found = Command::new("haproxy")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "this test needs the haproxy binary on the PATH: apt-get install haproxy"
    );
}

/// A free loopback port (bound, then released for HAProxy to take).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `coinfer serve` on a free loopback port; returns the process and its port.
fn serve(plan: &str) -> (Reaped, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_coinfer"))
        .args(["serve", "--plan", plan, "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("coinfer serve starts");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    // "serving plan <digest> (split 2, codec q8c) on 127.0.0.1:PORT"
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in `{line}`"));
    (Reaped(child), port)
}

/// The HAProxy configuration the docs show: TCP mode, health checks every 200 ms, a
/// failed connect retried on another server.
fn haproxy_config(front: u16, backends: &[u16]) -> String {
    let mut cfg = format!(
        "global\n    maxconn 4096\n\n\
         defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 60s\n    \
         timeout server 60s\n    retries 3\n    option redispatch\n\n\
         frontend coinfer\n    bind 127.0.0.1:{front}\n    default_backend edges\n\n\
         backend edges\n    balance roundrobin\n"
    );
    for (i, port) in backends.iter().enumerate() {
        cfg.push_str(&format!(
            "    server edge{i} 127.0.0.1:{port} check inter 200ms fall 1 rise 2\n"
        ));
    }
    cfg
}

#[test]
#[ignore = "needs haproxy (apt-get install haproxy); run by .ci/run"]
fn haproxy_failover_loses_no_request() {
    require_haproxy();
    let dir = scratch("haproxy");
    let plan_path = write_plan(&dir);
    let plan = plan_path.to_str().unwrap();
    let mut servers: Vec<(Reaped, u16)> = (0..SERVERS).map(|_| serve(plan)).collect();
    let ports: Vec<u16> = servers.iter().map(|(_, p)| *p).collect();
    let front = free_port();
    let cfg_path = dir.join("haproxy.cfg");
    std::fs::write(&cfg_path, haproxy_config(front, &ports)).unwrap();
    let _haproxy = Reaped(
        Command::new("haproxy")
            .args(["-db", "-f", cfg_path.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy starts"),
    );

    let device = Device::flex();
    let deployed = SplitPlan::deploy(&plan_path, &device).unwrap();
    let digest = deployed.plan.digest();
    // Wait on the observable condition (a handshake through HAProxy succeeds), not a fixed
    // number of tries: HAProxy starts and its health checks mark the servers up (`rise 2`:
    // 400 ms) in a time that depends on the machine's load.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match DeviceClient::connect(
            ("127.0.0.1", front),
            deployed.device.clone(),
            deployed.codec.clone(),
            &digest,
            ClientConfig::default(),
        ) {
            Ok(probe) => {
                probe.close();
                break;
            }
            Err(e) if Instant::now() > deadline => {
                panic!("HAProxy on port {front} did not forward a handshake within 30 s: {e}")
            }
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
    let done = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(CLIENTS + 1));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (half, codec, digest) = (
                deployed.device.clone(),
                deployed.codec.clone(),
                digest.clone(),
            );
            let (done, start, device) = (done.clone(), start.clone(), device.clone());
            thread::spawn(move || {
                // Retries back off 50 ms, 100 ms, … up to 1 s: ten of them wait ~6 s in all,
                // far more than HAProxy needs to mark the killed server down (one failed check
                // every 200 ms) even on a loaded 2-core machine; six (~2.5 s) was a margin
                // that a slow CI run could eat.
                let config = ClientConfig {
                    retries: 10,
                    ..ClientConfig::default()
                };
                // HAProxy already forwards (checked below before the clients start); a client
                // that still cannot connect reports it after the barrier, never leaves the
                // others waiting on it.
                let client = DeviceClient::connect(
                    ("127.0.0.1", front),
                    half.clone(),
                    codec.clone(),
                    &digest,
                    config,
                );
                start.wait();
                let mut client = client.expect("connects through haproxy");
                let (mut lost, mut slowest_retried) = (0usize, 0f64);
                for r in 0..REQUESTS {
                    let x = Tensor::<4>::ones([1, 1, 28, 28], &device)
                        * ((c * REQUESTS + r) as f32 / 1e4);
                    let before = client.reconnects();
                    let began = Instant::now();
                    match client.infer(x) {
                        Ok(result) if result.logits.len() == 10 => {}
                        _ => lost += 1,
                    }
                    if client.reconnects() > before {
                        slowest_retried = slowest_retried.max(began.elapsed().as_secs_f64());
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                (lost, client.reconnects(), slowest_retried)
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    // Kill one server once a third of the requests are answered.
    while done.load(Ordering::Relaxed) < CLIENTS * REQUESTS / 3 {
        thread::sleep(Duration::from_millis(5));
    }
    let (mut killed, _) = servers.remove(1);
    killed.0.kill().unwrap();
    let killed_after = began.elapsed().as_secs_f64();
    let mut lost = 0;
    let mut reconnects = 0;
    let mut failover_s = 0f64;
    for client in clients {
        let (l, r, slowest) = client.join().expect("client thread");
        lost += l;
        reconnects += r;
        failover_s = failover_s.max(slowest);
    }
    let total_s = began.elapsed().as_secs_f64();
    println!(
        "{{\"servers\":{SERVERS},\"clients\":{CLIENTS},\"requests\":{},\"lost\":{lost},\
         \"reconnects\":{reconnects},\"killed_after_s\":{killed_after:.3},\
         \"failover_s\":{failover_s:.3},\"total_s\":{total_s:.3}}}",
        CLIENTS * REQUESTS
    );
    assert_eq!(lost, 0, "requests lost");
    assert!(reconnects > 0, "the kill should have cut some connections");
    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
}
