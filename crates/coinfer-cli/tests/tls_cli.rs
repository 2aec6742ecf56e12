//! `coinfer serve` with mutual TLS and `coinfer infer` with and without a client certificate,
//! as separate processes (certificates made at test time): the client with a certificate
//! signed by the server's client CA is served (exit 0), the one without is refused with a
//! TLS error naming the certificate (exit 1), and so is a plain-TCP client.

mod runtime_plan;

#[path = "../../coinfer-runtime/tests/runtime_common/certs.rs"]
mod certs;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use runtime_plan::{scratch, write_plan};

/// Kills the server when the test ends, whatever happens.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn coinfer(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_coinfer"))
        .args(args)
        .env_remove("COINFER_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("coinfer runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn infer_needs_a_client_certificate_from_the_servers_ca() {
    let dir = scratch("tls-cli");
    let plan = write_plan(&dir);
    let plan = plan.to_str().unwrap();
    let pki = certs::pki("cli");
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let (ca, cert, key) = (path(&pki.ca), path(&pki.client_cert), path(&pki.client_key));
    let mut server = Command::new(env!("CARGO_BIN_EXE_coinfer"))
        .args(["serve", "--plan", plan, "--addr", "127.0.0.1:0"])
        .args(["--tls-cert", &path(&pki.server_cert)])
        .args(["--tls-key", &path(&pki.server_key)])
        .args(["--tls-client-ca", &ca])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("coinfer serve starts");
    let stdout = server.stdout.take().unwrap();
    let server = Reaped(server);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(line.contains("with mutual TLS"), "{line}");
    let addr = line.trim().rsplit(' ').next().unwrap().to_string();
    // The certificate names localhost and 127.0.0.1; the name checked defaults to the host of
    // --server.
    let infer = ["infer", "--plan", plan, "--server", &addr, "--n", "2"];
    let with = |extra: &[&str]| -> (Option<i32>, String) {
        coinfer(&infer.iter().chain(extra).copied().collect::<Vec<_>>())
    };
    let (code, stderr) = with(&[
        "--tls-ca",
        &ca,
        "--tls-client-cert",
        &cert,
        "--tls-client-key",
        &key,
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = with(&["--tls-ca", &ca]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    let (code, stderr) = with(&[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("TlsRequired"), "{stderr}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&pki.dir);
}
