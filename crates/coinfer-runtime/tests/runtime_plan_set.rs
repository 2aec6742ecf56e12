//! One edge server serving a plan set: every plan's requests get that plan's in-process
//! answer, a request for a plan outside the set is refused (`PlanNotInSet`) on a connection
//! that goes on, a client built for one plan of the set is still served, a set client is
//! refused by a single-plan server; and an adaptive client on a traced link leaves the edge
//! when the link slows and comes back when it recovers.

mod runtime_common;

use std::time::Duration;

use coinfer_codec::CodecId;
use coinfer_runtime::{
    AdaptiveClient, ClientConfig, ClientPlan, DeviceClient, EdgePlan, EdgeServer, ErrorCode,
    EstimatorConfig, LinkEstimate, LinkEstimator, LinkTrace, PlanChooser, PlanCosts, Policy,
    RuntimeError, ServerConfig, ServerHandle, TraceClock, TracePlayer, TraceStep,
};
use runtime_common::*;

const SET: &str = "set-of-two";

/// Plan `a`: split 2, 8-bit; plan `b`: split 3, float32.
fn serve_set(fx: &Fixture) -> ServerHandle {
    let (_, edge_b) = fx.whole.clone().split(3).unwrap();
    let plans = vec![
        EdgePlan::new(fx.edge_half.clone(), codec(CodecId::quant(8, true)), "a").unwrap(),
        EdgePlan::new(edge_b, codec(CodecId::Float32), "b").unwrap(),
    ];
    EdgeServer::bind_set("127.0.0.1:0", plans, SET, ServerConfig::default())
        .unwrap()
        .spawn()
        .unwrap()
}

fn set_plans(fx: &Fixture) -> Vec<ClientPlan> {
    let (device_b, _) = fx.whole.clone().split(3).unwrap();
    vec![
        ClientPlan::remote(fx.device_half.clone(), codec(CodecId::quant(8, true)), "a").unwrap(),
        ClientPlan::remote(device_b, codec(CodecId::Float32), "b").unwrap(),
        ClientPlan::local(fx.whole.clone(), "whole").unwrap(),
        ClientPlan::remote(fx.device_half.clone(), codec(CodecId::quant(8, true)), "c").unwrap(),
    ]
}

#[test]
fn every_plan_of_the_set_is_served_on_one_port() {
    let fx = fixture();
    let server = serve_set(&fx);
    let mut client = DeviceClient::connect_set(
        server.local_addr(),
        set_plans(&fx),
        SET,
        ClientConfig::default(),
    )
    .unwrap();
    let whole = to_vec(fx.whole.logits(input(&fx.device, 7, 2)).unwrap());
    let a = client.infer_with(0, input(&fx.device, 7, 2)).unwrap();
    let expected = expected_logits(
        &fx,
        codec(CodecId::quant(8, true)).as_ref(),
        input(&fx.device, 7, 2),
    );
    assert_close(&a.logits, &expected, 1e-5, "plan a");
    let b = client.infer_with(1, input(&fx.device, 7, 2)).unwrap();
    assert_close(
        &b.logits,
        &whole,
        1e-5,
        "plan b (float32) vs the whole network",
    );
    let local = client.infer_with(2, input(&fx.device, 7, 2)).unwrap();
    assert_close(&local.logits, &whole, 1e-5, "device-only");
    assert_eq!((local.frame_bytes, local.timing.wire_s), (0, 0.0));
    // Plan c is not in the server's set: a typed refusal, and the connection goes on.
    match client.infer_with(3, input(&fx.device, 7, 1)) {
        Err(RuntimeError::Remote { code, message, .. }) => {
            assert_eq!(code, ErrorCode::PlanNotInSet, "{message}");
            assert!(message.contains(SET), "{message}");
        }
        other => panic!("plan c must be refused: {other:?}"),
    }
    assert!(client.infer_with(0, input(&fx.device, 8, 1)).is_ok());
    assert!(matches!(
        client.infer_with(9, input(&fx.device, 8, 1)),
        Err(RuntimeError::InvalidConfig { field: "plan", .. })
    ));
    drop(client);

    // A client of one plan of the set (its own digest) is served that plan.
    let mut single = DeviceClient::connect(
        server.local_addr(),
        fx.device_half.clone(),
        codec(CodecId::quant(8, true)),
        "a",
        ClientConfig::default(),
    )
    .unwrap();
    let r = single.infer(input(&fx.device, 7, 2)).unwrap();
    assert_close(
        &r.logits,
        &expected,
        1e-5,
        "single-plan client of a set server",
    );
    drop(single);
    let stats = server.shutdown().unwrap();
    assert_eq!(stats.results, 4, "{stats:?}");

    // A set client meets a single-plan server: refused at the Hello.
    let single_server = spawn(&fx, codec(CodecId::quant(8, true)), ServerConfig::default());
    match DeviceClient::connect_set(
        single_server.local_addr(),
        set_plans(&fx),
        SET,
        ClientConfig::default(),
    ) {
        Err(RuntimeError::HandshakeRefused { code, .. }) => {
            assert_eq!(code, ErrorCode::DigestMismatch)
        }
        other => panic!("{other:?}"),
    }
    single_server.shutdown().unwrap();
}

#[test]
fn bad_sets_are_refused_at_bind() {
    let fx = fixture();
    let plan = |d: &str| EdgePlan::new(fx.edge_half.clone(), codec(CodecId::Float32), d).unwrap();
    for (plans, set) in [
        (vec![], SET),
        (vec![plan("a"), plan("a")], SET),
        (vec![plan("a")], "a"),
    ] {
        match EdgeServer::bind_set("127.0.0.1:0", plans, set, ServerConfig::default()) {
            Err(RuntimeError::InvalidConfig { field, .. }) => assert_eq!(field, "plans"),
            other => panic!("{other:?}"),
        }
    }
    // A client set without any remote plan has nothing to connect for.
    let local = vec![ClientPlan::local(fx.whole.clone(), "whole").unwrap()];
    match DeviceClient::connect_set("127.0.0.1:1", local, SET, ClientConfig::default()) {
        Err(RuntimeError::InvalidConfig { field, .. }) => assert_eq!(field, "plans"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_adaptive_client_follows_a_traced_link() {
    let fx = fixture();
    let server = serve_set(&fx);
    // 10 Mbit/s for 10 requests, 100 kbit/s for 20, 10 Mbit/s again; no added delay.
    let step = |at: f64, rate_bps: f64| TraceStep {
        at,
        rate_bps,
        delay_s: 0.0,
        up: true,
    };
    let trace = LinkTrace::new(
        "test",
        TraceClock::Requests,
        0.2,
        vec![step(0.0, 10e6), step(10.0, 100e3), step(30.0, 10e6)],
    )
    .unwrap();
    let player = TracePlayer::new(trace);
    let mut plans = set_plans(&fx);
    plans.truncate(3);
    plans[2] = ClientPlan::local(fx.whole.clone(), "whole")
        .unwrap()
        .emulate_device_time(Duration::from_millis(100));
    let client = DeviceClient::connect_set(
        server.local_addr(),
        plans,
        SET,
        ClientConfig {
            trace: Some(player.clone()),
            retries: 0,
            ..ClientConfig::default()
        },
    )
    .unwrap();
    // Plan a sends 1,916 bytes (1.5 ms at 10 Mbit/s, 153 ms at 100 kbit/s); the device alone
    // is emulated at 100 ms (so that an echo slowed by a loaded machine still shows the fast
    // link: it must only come in under 3.4 ms); plan b (25 KB) is never the fastest.
    let chooser = PlanChooser::new(
        vec![
            PlanCosts {
                compute_s: 0.001,
                payload_bits: 8 * 1856,
                remote: true,
            },
            PlanCosts {
                compute_s: 0.001,
                payload_bits: 8 * 25_000,
                remote: true,
            },
            PlanCosts {
                compute_s: 0.100,
                payload_bits: 0,
                remote: false,
            },
        ],
        60,
        0.1,
    )
    .unwrap();
    let prior = LinkEstimate {
        rate_bps: 10e6,
        rtt_s: 0.0,
        up: true,
    };
    let config = EstimatorConfig {
        explore_interval_s: 0.1,
        ..EstimatorConfig::default()
    };
    let estimator = LinkEstimator::new(prior, 60, config).unwrap();
    let mut adaptive = AdaptiveClient::new(
        client,
        chooser,
        estimator,
        Policy::Adaptive,
        Some(player.clone()),
    )
    .unwrap();
    player.start();
    let plans: Vec<Option<usize>> = (0..60)
        .map(|i| {
            let a = adaptive.infer(input(&fx.device, i, 1)).unwrap();
            a.plan
        })
        .collect();
    assert!(plans.iter().all(Option::is_some), "{plans:?}");
    assert!(plans[..10].iter().all(|p| *p == Some(0)), "{plans:?}");
    // The first slow request shows the drop; within three more the device answers alone
    // (measuring the link with Hello echoes while it computes).
    assert!(plans[14..30].iter().all(|p| *p == Some(2)), "{plans:?}");
    // The link is fast again from request 30: an echo shows it and the edge is back.
    assert!(plans[55..].iter().all(|p| *p == Some(0)), "{plans:?}");
    let switches = adaptive.switches();
    assert!(
        switches.iter().any(|s| s.from == 0 && s.to == 2),
        "{switches:?}"
    );
    assert!(
        switches
            .iter()
            .any(|s| s.from == 2 && s.to == 0 && s.request >= 30),
        "{switches:?}"
    );
    drop(adaptive);
    server.shutdown().unwrap();
}
