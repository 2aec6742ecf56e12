//! The co-inference search end to end on a small real subset: state/action mapping, budget
//! clipping, caching, resume, and a short search that must produce a deployable plan.

use std::path::Path;
use std::sync::OnceLock;

use burn::prelude::*;
use coinfer_automl::agent::{DdpgConfig, Environment};
use coinfer_automl::codec::CodecId;
use coinfer_automl::codecs::CodecSetup;
use coinfer_automl::data::{Normalization, TrainTest, embedded};
use coinfer_automl::env::{CoInferenceEnv, STATE_DIM};
use coinfer_automl::evaluator::PlanEvaluator;
use coinfer_automl::profile::{ComputeProfile, LinkProfile};
use coinfer_automl::space::{Decision, SearchSpace};
use coinfer_automl::split::{Network, zoo};
use coinfer_automl::sweep::SweepGrid;
use coinfer_automl::{Baseline, BaselineSettings, CoInference, Reward, SearchConfig, SplitPlan};

fn small_data() -> TrainTest {
    let full = embedded::fashion_mnist_subset().unwrap();
    TrainTest {
        train: full.train.class_balanced_subset(30, 1).unwrap(),
        test: full.test.class_balanced_subset(10, 1).unwrap(),
    }
}

fn config(episodes: usize) -> SearchConfig {
    SearchConfig {
        episodes,
        ddpg: DdpgConfig {
            hidden: vec![32, 32],
            warmup_episodes: 3,
            batch_size: 8,
            seed: 5,
            ..DdpgConfig::default()
        },
        validation_images: 60,
        codecs: CodecSetup::fixed_only(),
        finetune: coinfer_automl::finetune::FineTuneConfig {
            epochs: 1,
            ..Default::default()
        },
        refine: coinfer_automl::refine::RefineConfig {
            max_evaluations: 20,
            ..Default::default()
        },
        ..SearchConfig::default()
    }
}

/// Seed of the one random backbone every test searches.
const BACKBONE_SEED: u64 = 17;

/// One random backbone for every test, the same in every run: burn's generator is
/// process-wide, so it is seeded and drawn inside the `OnceLock`, which every test of this
/// binary passes through before it draws anything else (the other tests wait on the lock).
fn backbone() -> Network {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    let device = Device::flex();
    let bytes = BYTES.get_or_init(|| {
        device.seed(BACKBONE_SEED);
        Network::new(zoo::resnet_mini(10), &device)
            .unwrap()
            .to_bytes()
            .unwrap()
    });
    Network::from_bytes(bytes, Path::new("test backbone"), &device).unwrap()
}

fn search(reward: Reward, config: SearchConfig) -> CoInference {
    let device = Device::flex();
    let model = backbone();
    CoInference::builder()
        .model(model)
        .data(small_data())
        .device(ComputeProfile::analytic(1e9, 50e-6).unwrap())
        .link(LinkProfile::new(10e6, 0.01, 80).unwrap())
        .edge(ComputeProfile::analytic(1e12, 30e-6).unwrap())
        .reward(reward)
        .config(config)
        .backend(device)
        .build()
        .unwrap()
}

fn run_episode(env: &mut CoInferenceEnv<'_>, actions: &[f32]) -> Vec<(Vec<f32>, f32)> {
    let mut seen = vec![(env.reset().unwrap(), f32::NAN)];
    for &a in actions {
        let step = env.step(a).unwrap();
        seen.push((step.state.clone(), step.applied_action));
        if step.done {
            return seen;
        }
    }
    panic!("episode did not finish after {} actions", actions.len());
}

#[test]
fn actions_map_to_the_decision_and_states_describe_each_step() {
    let search = search(Reward::ErrorLogLatency, config(1));
    let mut session = search.prepare().unwrap();
    let evaluator: &mut PlanEvaluator = session.evaluator();
    let space: SearchSpace = evaluator.space().clone();
    // Split action 0.7 → candidate 4 of 6 (split 4, after every basic block).
    let split_action = 0.7;
    let candidate = space.candidate_for(split_action);
    let layers = space.candidates[candidate].prunable.len();
    assert_eq!(space.candidates[candidate].split, 4);
    assert_eq!(layers, 4);
    let mut actions = vec![split_action];
    actions.extend([0.0, 0.25, 0.5, 1.0]);
    actions.push(0.99);
    let mut env = CoInferenceEnv::new(evaluator, Reward::ErrorLogLatency).unwrap();
    assert_eq!(env.state_dim(), STATE_DIM);
    let seen = run_episode(&mut env, &actions);
    // reset + split + 4 prune steps + codec.
    assert_eq!(seen.len(), 7);
    assert_eq!(seen[0].0[0], 1.0, "the first state is the split decision");
    for (state, _) in &seen[1..5] {
        assert_eq!(state[1], 1.0, "prune states are flagged");
        assert!(
            state
                .iter()
                .all(|v| v.is_finite() && (-1e-6..=1.0 + 1e-6).contains(v))
        );
    }
    assert_eq!(seen[5].0[2], 1.0, "the last decision is the codec");
    let record = env.records().last().unwrap();
    let expected_ratios: Vec<f32> = [0.0, 0.25, 0.5, 1.0]
        .iter()
        .map(|&a| space.ratio_for(a))
        .collect();
    assert_eq!(record.decision.candidate, candidate);
    assert_eq!(record.decision.prune_ratios, expected_ratios);
    assert_eq!(
        record.decision.codec,
        space.candidates[candidate].family.len() - 1
    );
    // Without a budget the applied actions are the agent's own.
    let applied: Vec<f32> = seen[1..].iter().map(|(_, a)| *a).collect();
    assert_eq!(applied, actions);
    assert!(record.reward.is_finite() && record.reward < 0.0);
}

#[test]
fn budget_clipping_keeps_every_plan_within_a_reachable_budget() {
    // 10.6 ms: below the unpruned deep splits (device time) but reachable by pruning or by an
    // early split with a small codec.
    let budget_s = 0.0106;
    let reward = Reward::AccuracyUnderBudget { budget_s };
    let search = search(reward, config(1));
    let mut session = search.prepare().unwrap();
    let mut env = CoInferenceEnv::new(session.evaluator(), reward).unwrap();
    let mut clipped = 0;
    for i in 0..12 {
        // Greedy-for-accuracy actions: deep split, no pruning, the largest codec.
        let split = 0.5 + 0.04 * i as f32;
        let actions = [split, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0];
        let seen = run_episode(&mut env, &actions);
        let record = env.records().last().unwrap();
        assert!(
            record.evaluation.latency.total <= budget_s + 1e-12,
            "plan {:?} takes {} s > budget",
            record.decision,
            record.evaluation.latency.total
        );
        let applied: Vec<f32> = seen[1..].iter().map(|(_, a)| *a).collect();
        if applied[..] != actions[..applied.len()] {
            clipped += 1;
        }
    }
    assert!(clipped > 0, "the budget never had to clip an action");
}

#[test]
fn the_same_plan_is_evaluated_once() {
    let search = search(Reward::ErrorLogLatency, config(1));
    let mut session = search.prepare().unwrap();
    let ev = session.evaluator();
    ev.begin_session();
    let candidate = 3;
    let layers = ev.space().candidates[candidate].prunable.len();
    let a = Decision {
        candidate,
        prune_ratios: vec![0.5; layers],
        codec: 1,
    };
    // Ratios that keep the same filters build the same network: a cache hit.
    let b = Decision {
        prune_ratios: vec![0.51; layers],
        ..a.clone()
    };
    let first = ev.evaluate(&a).unwrap();
    let second = ev.evaluate(&b).unwrap();
    assert_eq!(first, second);
    assert_eq!(ev.evaluations(), 1);
    assert_eq!(ev.lookups(), 2);
    assert_eq!(ev.session_evaluations(), 1);
    let c = Decision {
        prune_ratios: vec![0.0; layers],
        ..a
    };
    let third = ev.evaluate(&c).unwrap();
    assert_eq!(ev.evaluations(), 2);
    assert!(
        third.device_flops > first.device_flops,
        "pruning must remove device FLOPs"
    );
    assert!(third.latency.device > first.latency.device);
}

#[test]
fn codec_variants_of_one_pruned_network_score_as_a_fresh_evaluator_does() {
    // The evaluator reuses the last pruned network's halves and device-half features for
    // plans that differ only in their codec; the scores must not depend on that.
    let search = search(Reward::ErrorLogLatency, config(1));
    let candidate = 3;
    let mut shared = search.prepare().unwrap();
    let ev = shared.evaluator();
    let layers = ev.space().candidates[candidate].prunable.len();
    let codecs = ev.space().candidates[candidate].family.entries.len();
    assert!(codecs >= 2, "the test needs codec variants");
    // Every codec of one pruned network, then every codec of another: a cache keyed on too
    // little would score the second network with the first one's features.
    let decisions: Vec<Decision> = [0.5, 0.0]
        .into_iter()
        .flat_map(|ratio| {
            (0..codecs).map(move |codec| Decision {
                candidate,
                prune_ratios: vec![ratio; layers],
                codec,
            })
        })
        .collect();
    let in_a_row: Vec<_> = decisions.iter().map(|d| ev.evaluate(d).unwrap()).collect();
    for (decision, reused) in decisions.iter().zip(&in_a_row).rev() {
        let mut fresh = search.prepare().unwrap();
        let alone = fresh.evaluator().evaluate(decision).unwrap();
        assert_eq!(&alone, reused, "codec {}", decision.codec);
    }
}

#[test]
fn evaluate_all_scores_as_evaluate_one_after_another() {
    // Plans of two pruned networks at two split points, a repeat, and one already cached:
    // in parallel (3 threads) they must score, cache, count and order as one after another.
    let search = search(Reward::ErrorLogLatency, config(1));
    let mut one_by_one = search.prepare().unwrap();
    let mut all_at_once = search.prepare().unwrap();
    let space = one_by_one.evaluator().space().clone();
    let mut decisions = Vec::new();
    for candidate in [3, 1] {
        let layers = space.candidates[candidate].prunable.len();
        for ratio in [0.5, 0.0] {
            for codec in 0..space.candidates[candidate].family.entries.len() {
                decisions.push(Decision {
                    candidate,
                    prune_ratios: vec![ratio; layers],
                    codec,
                });
            }
        }
    }
    decisions.push(decisions[2].clone());
    let cached = decisions[5].clone();
    let sequential = {
        let ev = one_by_one.evaluator();
        ev.evaluate(&cached).unwrap();
        ev.begin_session();
        decisions
            .iter()
            .map(|d| ev.evaluate(d).unwrap())
            .collect::<Vec<_>>()
    };
    let parallel = {
        let ev = all_at_once.evaluator();
        ev.evaluate(&cached).unwrap();
        ev.begin_session();
        let threads = coinfer_automl::split::Threads::new(3).unwrap();
        threads.install(|| ev.evaluate_all(&decisions).unwrap())
    };
    assert_eq!(parallel, sequential);
    let (a, b) = (one_by_one.evaluator(), all_at_once.evaluator());
    assert_eq!(a.evaluated(), b.evaluated(), "cache order");
    assert_eq!(a.evaluations(), b.evaluations());
    assert_eq!(a.lookups(), b.lookups());
    assert_eq!(a.session_evaluations(), b.session_evaluations());
    // Every distinct plan of the list (the cached one included) is charged to the session,
    // and there were several to run in parallel.
    assert_eq!(b.session_evaluations(), b.evaluations());
    assert!(
        b.evaluations() > 4,
        "only {} distinct plans",
        b.evaluations()
    );
}

#[test]
fn refinement_climbs_to_a_plan_no_single_move_improves_within_its_budget() {
    use coinfer_automl::refine::{RefineConfig, refine};
    let reward = Reward::ErrorLogLatency;
    let search = search(reward, config(1));
    let mut session = search.prepare().unwrap();
    let ev = session.evaluator();
    ev.begin_session();
    // A poor start: the image sent as float32.
    let space = ev.space().clone();
    let float32 = space.candidates[0]
        .family
        .entries
        .iter()
        .position(|e| e.id == CodecId::Float32)
        .unwrap();
    let start = ev
        .evaluate(&Decision {
            candidate: 0,
            prune_ratios: Vec::new(),
            codec: float32,
        })
        .unwrap();
    let config = RefineConfig {
        starts: 1,
        max_evaluations: 400,
        ratio_step: 0.2,
        patience: 3,
        unpruned_starts: false,
    }
    .check()
    .unwrap();
    let refined = refine(ev, &reward, std::slice::from_ref(&start), &config).unwrap();
    assert_eq!(refined.start, start);
    assert!(refined.improved(&reward), "{refined:?}");
    assert!(refined.moves >= 1);
    assert!(refined.evaluations <= 400);
    assert!(refined.best.latency.total < start.latency.total);

    // A local optimum: no other codec and no single ratio moved by a step beats it.
    let best = ev.decision_of(&refined.best).unwrap();
    let score = reward.score(&refined.best);
    let family = space.candidates[best.candidate].family.len();
    let mut neighbours: Vec<Decision> = (0..family)
        .map(|codec| Decision {
            codec,
            ..best.clone()
        })
        .collect();
    for layer in 0..best.prune_ratios.len() {
        for delta in [-0.2, 0.2] {
            let mut ratios = best.prune_ratios.clone();
            ratios[layer] = (ratios[layer] + delta).clamp(0.0, space.max_prune);
            neighbours.push(Decision {
                prune_ratios: ratios,
                ..best.clone()
            });
        }
    }
    for neighbour in neighbours {
        let evaluation = ev.evaluate(&neighbour).unwrap();
        assert!(
            reward.score(&evaluation) <= score,
            "{neighbour:?} beats the refined plan {:?}",
            refined.best
        );
    }

    // A budget of one plan stops after one new plan.
    let mut session = search.prepare().unwrap();
    let ev = session.evaluator();
    ev.begin_session();
    let start = ev.evaluate(&ev.decision_of(&start).unwrap()).unwrap();
    let tight = RefineConfig {
        max_evaluations: 1,
        ..*config
    }
    .check()
    .unwrap();
    let refined = refine(ev, &reward, &[start], &tight).unwrap();
    assert_eq!(refined.evaluations, 1);
}

#[test]
#[ignore = "its scenario re-ranks no plan (checked since issue 25: it passed only by testing \
            nothing); needs a setup where a plan faster than the answer loses at most \
            RERANK_SLACK"]
fn re_ranking_fine_tunes_only_faster_plans_and_keeps_the_fastest_that_then_fits() {
    let reward = Reward::FastestWithinTolerance {
        tolerance: 0.0,
        confidence: 0.5,
    };
    let cfg = SearchConfig {
        rerank: 2,
        ..config(30)
    };
    // A fast device and a slow edge: pruned deep splits are the fast plans, and some of them
    // lose a little accuracy (the ones re-ranking is for).
    let search = CoInference::builder()
        .model(backbone())
        .data(small_data())
        .device(ComputeProfile::analytic(1e12, 1e-6).unwrap())
        .link(LinkProfile::new(1e6, 0.0, 80).unwrap())
        .edge(ComputeProfile::analytic(1e8, 1e-6).unwrap())
        .reward(reward)
        .config(cfg)
        .backend(Device::flex())
        .build()
        .unwrap();
    let mut session = search.prepare().unwrap();
    let run = session.run_ddpg(None, |_| {}).unwrap();
    let report = session.report(run, Vec::new(), None).unwrap();
    let answer = report.refinement.as_ref().unwrap().best.clone();
    // Exactly the rule's plans: the fastest evaluated plans with a device half that are
    // faster than the answer and drop at most the slack beyond the tolerance (0 here).
    let mut expected: Vec<_> = report
        .evaluated
        .iter()
        .filter(|e| {
            e.split > 0
                && e.latency.total < answer.latency.total
                && e.paired.mean() <= coinfer_automl::RERANK_SLACK
        })
        .collect();
    expected.sort_by(|a, b| a.latency.total.total_cmp(&b.latency.total));
    expected.truncate(2);
    let rule: Vec<_> = expected
        .iter()
        .map(|e| (e.split, e.codec, e.latency.total))
        .collect();
    let tried: Vec<_> = report
        .reranked
        .iter()
        .map(|r| (r.split, r.codec, r.latency_s))
        .collect();
    assert_eq!(tried, rule);
    // The case the test is named for happened: plans were re-ranked, and one of them fits
    // after its fine-tune (on this fixed backbone and data, every run alike).
    assert!(
        !report.reranked.is_empty(),
        "no plan was re-ranked; the scenario no longer exercises re-ranking"
    );
    let winner = report
        .reranked
        .iter()
        .find(|r| r.feasible)
        .unwrap_or_else(|| panic!("no re-ranked plan fits: {:?}", report.reranked));
    // The fastest plan that fits after its fine-tune replaces the answer.
    assert_eq!(report.plan.predicted.total, winner.latency_s);
    assert_eq!(report.plan.split, winner.split);
    assert!(winner.latency_s < answer.latency.total);
    assert_eq!(
        report.to_markdown().contains("Re-ranking"),
        !report.reranked.is_empty()
    );
}

#[test]
fn an_interrupted_search_resumes_where_it_stopped() {
    let dir = std::env::temp_dir().join(format!("coinfer-resume-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();

    let uninterrupted = {
        let search = search(Reward::ErrorLogLatency, config(8));
        let mut session = search.prepare().unwrap();
        session.run_ddpg(None, |_| {}).unwrap()
    };
    let first_part = {
        let search = search(Reward::ErrorLogLatency, config(5));
        let mut session = search.prepare().unwrap();
        session.run_ddpg(Some(&dir), |_| {}).unwrap()
    };
    assert_eq!(first_part.records.len(), 5);
    let resumed = {
        let search = search(Reward::ErrorLogLatency, config(8));
        let mut session = search.prepare().unwrap();
        let mut fresh = 0;
        let run = session.run_ddpg(Some(&dir), |_| fresh += 1).unwrap();
        assert_eq!(fresh, 3, "only the missing episodes run after a resume");
        run
    };
    let rewards = |run: &coinfer_automl::DdpgRun| -> Vec<f32> {
        run.records.iter().map(|r| r.reward).collect()
    };
    assert_eq!(rewards(&resumed), rewards(&uninterrupted));
    assert_eq!(resumed.evaluations, uninterrupted.evaluations);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_short_search_produces_a_deployable_plan() {
    let mut cfg = config(6);
    cfg.codecs = CodecSetup {
        ae_ratios: vec![8],
        ae_bits: vec![4],
        ae_train_images: 64,
        ..CodecSetup::default()
    };
    let search = search(Reward::ErrorLogLatency, cfg);
    let wall = std::time::Instant::now();
    let mut session = search.prepare().unwrap();
    // Every split after the input offers the trained autoencoder.
    let space = session.evaluator().space().clone();
    for c in &space.candidates[1..] {
        assert!(
            c.family.entries.iter().any(|e| e.id.is_learned()),
            "split {}",
            c.split
        );
    }
    let run = session.run_ddpg(None, |_| {}).unwrap();
    assert_eq!(run.records.len(), 6);
    let which: Vec<Baseline> = Baseline::ALL
        .into_iter()
        .filter(|b| *b != Baseline::ExhaustiveGrid)
        .collect();
    let settings = BaselineSettings {
        grid_levels: 2,
        ..session.baseline_settings(run.evaluations)
    };
    let baselines = session.baselines(&which, &settings, |_| {}).unwrap();
    let names: Vec<&str> = baselines.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "device-only",
            "edge-only-raw",
            "edge-only-quantized",
            "edge-only-image",
            "neurosurgeon",
            "pruning-only",
            "compression-only",
            "uniform-grid",
            "random"
        ]
    );
    let out = std::env::temp_dir().join(format!("coinfer-plan-{}", std::process::id()));
    let report = session.report(run, baselines, Some(&out)).unwrap();
    let wall = wall.elapsed().as_secs_f64();
    let plan = &report.plan;
    assert!(space.candidates.iter().any(|c| c.split == plan.split));
    assert!(plan.test_accuracy.is_some_and(|a| (0.0..=1.0).contains(&a)));
    assert!(plan.predicted.total > 0.0);
    assert!(report.to_markdown().contains("Best plan"));
    assert!(report.to_markdown().contains("Wall time per phase"));
    // The session's wall time, against this test's own clock around the same calls: every
    // phase the session runs was measured, and together they account for most of the time
    // (what they leave out, the backbone's test accuracy and the test's own bookkeeping,
    // takes well under half of it here).
    let phases = &report.phases;
    for (phase, seconds) in [
        ("codecs", phases.codecs_s),
        ("search", phases.search_s),
        ("baselines", phases.baselines_s),
        ("fine-tuning", phases.finetune_s),
    ] {
        assert!(seconds > 0.0, "{phase} took {seconds} s");
    }
    assert!(
        (0.5 * wall..=wall).contains(&report.seconds),
        "the session reports {} s; the test measured {wall} s around it",
        report.seconds
    );
    let kinds: Vec<Option<Baseline>> = report
        .baselines
        .iter()
        .map(|b| Baseline::from_name(&b.name))
        .collect();
    assert_eq!(kinds, which.iter().copied().map(Some).collect::<Vec<_>>());

    // The exported plan loads back, and its halves + codec reproduce the in-process result.
    let device = Device::flex();
    let deployed = SplitPlan::deploy(out.join("plan.json"), &device).unwrap();
    assert_eq!(deployed.plan.digest(), plan.digest());
    assert_eq!(
        (deployed.plan.split, deployed.plan.codec),
        (plan.split, plan.codec)
    );
    // The in-process result is the plan's test accuracy, measured by the session on the
    // fine-tuned halves with the codec in the loop; the deployed halves, run on the same test
    // images with the plan's normalisation, must score the same.
    let data = small_data();
    assert_eq!(
        deployed.plan.normalization,
        Normalization::fit(&data.train),
        "the plan carries the training normalisation"
    );
    let all: Vec<usize> = (0..data.test.len()).collect();
    let (x, labels) = data
        .test
        .batch(&all, &deployed.plan.normalization, &device)
        .unwrap();
    let feature = deployed.device.forward(x).unwrap();
    let logits = deployed
        .edge
        .logits(deployed.codec.roundtrip(feature).unwrap())
        .unwrap();
    assert_eq!(logits.dims(), [all.len(), 10]);
    let predicted: Vec<i64> = logits.argmax(1).into_data().iter::<i64>().collect();
    let labels: Vec<i64> = labels.into_data().iter::<i64>().collect();
    let correct = predicted
        .iter()
        .zip(&labels)
        .filter(|(p, l)| p == l)
        .count();
    let deployed_accuracy = correct as f32 / all.len() as f32;
    let in_process = plan.test_accuracy.unwrap();
    assert!(
        (deployed_accuracy - in_process).abs() <= 1e-4,
        "deployed halves score {deployed_accuracy}, the session measured {in_process}"
    );
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn invalid_settings_are_rejected_by_name() {
    let model = backbone();
    let base = || {
        CoInference::builder()
            .model(model.clone())
            .data(small_data())
            .device(ComputeProfile::analytic(1e9, 0.0).unwrap())
            .link(LinkProfile::new(1e7, 0.01, 0).unwrap())
            .edge(ComputeProfile::analytic(1e12, 0.0).unwrap())
    };
    let err = |b: coinfer_automl::CoInferenceBuilder| b.build().err().unwrap().to_string();
    assert!(err(base().episodes(0)).contains("episodes"));
    assert!(err(base().reward(Reward::AccuracyUnderBudget { budget_s: -1.0 })).contains("budget"));
    let cfg = SearchConfig {
        max_prune: 1.0,
        ..SearchConfig::default()
    };
    assert!(err(base().config(cfg)).contains("max_prune"));
    let cfg = SearchConfig {
        validation_images: 10_000,
        ..SearchConfig::default()
    };
    assert!(err(base().config(cfg)).contains("validation_images"));
    let missing = CoInference::builder()
        .data(small_data())
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(missing.contains("model"), "{missing}");
}

#[test]
fn the_exhaustive_grid_evaluates_every_grid_plan_once() {
    let search = search(Reward::ErrorLogLatency, config(1));
    let mut session = search.prepare().unwrap();
    let ev = session.evaluator();
    let expected = ev.space().grid_size(2) as usize;
    let result = coinfer_automl::exhaustive_grid(ev, &Reward::ErrorLogLatency, 2).unwrap();
    assert_eq!(result.evaluations, expected);
    // The grid written out by hand: every split, every codec of its family, and each prunable
    // layer at 0 or at `max_prune` (two levels).
    let space = ev.space().clone();
    let mut by_hand = std::collections::BTreeSet::new();
    for (candidate, c) in space.candidates.iter().enumerate() {
        let layers = c.prunable.len();
        for codec in 0..c.family.len() {
            for mask in 0..1u32 << layers {
                let ratios: Vec<u32> = (0..layers)
                    .map(|l| {
                        if mask >> l & 1 == 1 {
                            space.max_prune
                        } else {
                            0.0
                        }
                        .to_bits()
                    })
                    .collect();
                by_hand.insert((candidate, codec, ratios));
            }
        }
    }
    let evaluated: std::collections::BTreeSet<_> = ev
        .evaluated()
        .iter()
        .map(|e| {
            let d = ev.decision_of(e).unwrap();
            let ratios: Vec<u32> = d.prune_ratios.iter().map(|r| r.to_bits()).collect();
            (d.candidate, d.codec, ratios)
        })
        .collect();
    assert_eq!(by_hand.len(), expected);
    assert_eq!(evaluated, by_hand);
    // The reported plan is the grid's best under AMC's reward `-error · ln(T / 1 µs)`, written
    // out here rather than asked of `Reward::score`, and the reported reward is its value.
    let by_hand = |e: &coinfer_automl::evaluator::Evaluation| -> f64 {
        -(1.0 - f64::from(e.accuracy)) * (e.latency.total * 1e6).max(1.0).ln()
    };
    let best_by_hand = ev
        .evaluated()
        .iter()
        .map(|e| by_hand(e))
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(
        (f64::from(result.reward) - best_by_hand).abs() <= 1e-5 * best_by_hand.abs().max(1.0),
        "reported reward {} but the grid's best is {best_by_hand}",
        result.reward
    );
    assert!(
        (by_hand(&result.best) - best_by_hand).abs() <= 1e-5 * best_by_hand.abs().max(1.0),
        "the reported plan scores {} by hand, the grid's best {best_by_hand}",
        by_hand(&result.best)
    );
}

/// The raw input's family holds every image codec and the entropy-coded quantizers, sized by
/// the mean payload measured on training images (one image per payload), and the family's
/// order is the bank's.
#[test]
fn the_input_family_offers_image_codecs_with_measured_sizes() {
    use coinfer_automl::codec::{ImageFormat, ImageNormalization, input_codec, mean_payload_bits};
    let mut cfg = config(1);
    cfg.codecs = CodecSetup {
        input_measure_images: 40,
        ..CodecSetup::fixed_only()
    };
    let search = search(Reward::default(), cfg);
    let mut session = search.prepare().unwrap();
    let input = session.evaluator().space().candidates[0].clone();
    assert_eq!(input.split, 0);
    let ids: Vec<CodecId> = input.family.entries.iter().map(|e| e.id).collect();
    let mut expected = vec![CodecId::image(ImageFormat::Png, 0)];
    expected.extend([50, 75, 90].map(|q| CodecId::image(ImageFormat::Jpeg, q)));
    expected.extend([50, 75, 90].map(|q| CodecId::image(ImageFormat::Webp, q)));
    expected.push(CodecId::image(ImageFormat::WebpLossless, 0));
    expected.extend([2, 4, 8].map(|bits| CodecId::Quant {
        bits,
        per_channel: false,
        entropy: true,
    }));
    for id in &expected {
        assert!(ids.contains(id), "{id} missing from {ids:?}");
    }
    assert!(
        input
            .family
            .entries
            .windows(2)
            .all(|w| w[0].bits_per_sample <= w[1].bits_per_sample)
    );
    // Re-measure two of them by hand on the same 40 training images.
    let data = small_data();
    let seed = search.config().seed;
    let (train, _) = coinfer_automl::split_validation(&data.train, 60, seed).unwrap();
    let norm = Normalization::fit(&data.train);
    let indices: Vec<usize> = (0..40).collect();
    let (images, _) = train.batch(&indices, &norm, &Device::flex()).unwrap();
    let image_norm = ImageNormalization::new(norm.mean.clone(), norm.std.clone()).unwrap();
    for id in [
        CodecId::image(ImageFormat::Webp, 50),
        CodecId::Quant {
            bits: 4,
            per_channel: false,
            entropy: true,
        },
    ] {
        let codec = input_codec(id, &image_norm).unwrap();
        let measured = mean_payload_bits(codec.as_ref(), images.clone()).unwrap();
        assert_eq!(
            input.family.get(id).unwrap().bits_per_sample,
            measured,
            "{id}"
        );
        // Smaller than the raw 8-bit image, which a user would otherwise send.
        assert!(measured < CodecId::quant(8, false).bits_per_sample([1, 28, 28]));
    }
    // Every image codec is scored through the backbone like any other codec.
    let webp = ids
        .iter()
        .position(|&id| id == CodecId::image(ImageFormat::Webp, 90))
        .unwrap();
    let evaluation = session
        .evaluator()
        .evaluate(&coinfer_automl::space::Decision {
            candidate: 0,
            prune_ratios: Vec::new(),
            codec: webp,
        })
        .unwrap();
    assert_eq!(evaluation.codec, CodecId::image(ImageFormat::Webp, 90));
    assert_eq!(
        evaluation.payload_bits,
        input.family.entries[webp].bits_per_sample
    );
    assert!((0.0..=1.0).contains(&evaluation.accuracy));
    // Its encoder and decoder cost time on the device and the edge.
    assert!(evaluation.latency.encode > 0.0 && evaluation.latency.decode > 0.0);
}

#[test]
fn every_baseline_returns_the_kind_of_plan_its_name_promises() {
    let mut cfg = config(1);
    cfg.codecs = CodecSetup::fixed_only();
    let search = search(Reward::default(), cfg);
    let mut session = search.prepare().unwrap();
    let settings = BaselineSettings {
        grid_levels: 2,
        ..session.baseline_settings(8)
    };
    let results = session
        .baselines(&Baseline::ALL, &settings, |_| {})
        .unwrap();
    let blocks = session.evaluator().backbone().spec().blocks.len();
    let get = |b: Baseline| results.iter().find(|r| r.name == b.name()).unwrap();
    let raw = get(Baseline::EdgeOnlyRaw);
    assert_eq!(
        (raw.best.split, raw.best.codec),
        (0, CodecId::quant(8, false))
    );
    let quantized = get(Baseline::EdgeOnlyQuantized);
    assert_eq!(quantized.best.split, 0);
    assert!(
        matches!(quantized.best.codec, CodecId::Quant { .. }),
        "{:?}",
        quantized.best.codec
    );
    assert!(
        quantized.reward >= raw.reward,
        "the best input quantizer includes the raw one"
    );
    let image = get(Baseline::EdgeOnlyImage);
    assert_eq!(image.best.split, 0);
    assert!(image.best.codec.is_image(), "{:?}", image.best.codec);
    // Its size is the measured mean payload of the chosen image codec.
    let input = &session.evaluator().space().candidates[0];
    let entry = input.family.get(image.best.codec).unwrap();
    assert_eq!(image.best.payload_bits, entry.bits_per_sample);
    let device = get(Baseline::DeviceOnly);
    assert_eq!((device.best.split, device.best.payload_bits), (blocks, 0));
    for unpruned in [Baseline::Neurosurgeon, Baseline::CompressionOnly] {
        let r = get(unpruned);
        assert!(r.best.prune_ratios.iter().all(|&p| p == 0.0), "{}", r.name);
    }
    let surgeon = get(Baseline::Neurosurgeon);
    assert!(
        surgeon.best.split == blocks
            || surgeon.best.codec == CodecId::Float32
            || (surgeon.best.split == 0 && surgeon.best.codec == CodecId::quant(8, false)),
        "{:?}",
        surgeon.best
    );
    let pruning = get(Baseline::PruningOnly);
    // Pruning only: the feature goes uncompressed (the raw 8-bit image at the input, float32
    // after it), or the plan is device-only; its ratios are checked on every plan it tries in
    // `pruning_only_tries_one_uniform_ratio_per_plan_at_every_depth`.
    let p = &pruning.best;
    let uncompressed = if p.split == 0 {
        CodecId::quant(8, false)
    } else {
        CodecId::Float32
    };
    assert!(p.split == blocks || p.codec == uncompressed, "{p:?}");
    // The searching baselines can only do better than the fixed plans they contain.
    assert!(get(Baseline::CompressionOnly).reward >= surgeon.reward.min(raw.reward));
    assert!(get(Baseline::ExhaustiveGrid).reward >= get(Baseline::UniformGrid).reward);
    for b in Baseline::ALL {
        assert_eq!(Baseline::from_name(b.name()), Some(b));
    }
}

#[test]
fn pruning_only_tries_one_uniform_ratio_per_plan_at_every_depth() {
    // Every plan the baseline evaluates (on a fresh evaluator, so nothing else is in it) prunes
    // all its device layers by one ratio, and the check covers plans with several layers and
    // a ratio above 0, where non-uniform ratios could show.
    let mut cfg = config(1);
    cfg.codecs = CodecSetup::fixed_only();
    let search = search(Reward::default(), cfg);
    let mut session = search.prepare().unwrap();
    let settings = BaselineSettings {
        grid_levels: 3,
        ..session.baseline_settings(8)
    };
    session
        .baselines(&[Baseline::PruningOnly], &settings, |_| {})
        .unwrap();
    let evaluated = session.evaluator().evaluated();
    let mut telling = 0;
    for e in &evaluated {
        let ratios = &e.prune_ratios;
        assert!(
            ratios.windows(2).all(|w| w[0] == w[1]),
            "not uniform: {ratios:?}"
        );
        if ratios.len() >= 2 && ratios[0] > 0.0 {
            telling += 1;
        }
    }
    assert!(
        telling > 0,
        "no evaluated plan pruned two or more layers: {:?}",
        evaluated
            .iter()
            .map(|e| &e.prune_ratios)
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_sweep_finds_device_only_on_a_dead_link_and_offloads_on_a_fast_one() {
    let mut cfg = config(1);
    cfg.codecs = CodecSetup::fixed_only();
    let search = search(Reward::default(), cfg);
    let mut session = search.prepare().unwrap();
    let mut grid = SweepGrid::default_grid(ComputeProfile::analytic(1e12, 0.0).unwrap());
    // 10 bit/s: any upload takes minutes; 1 Gbit/s with no RTT and a 1 MFLOP/s device: any
    // device work takes seconds, sending the image takes microseconds.
    grid.rates_bps = vec![10.0, 1e9];
    grid.device_flops_per_s = vec![1e6];
    grid.rtts_s = vec![0.0];
    let sweep = session.sweep(&grid, 6, None, |_, _, _| {}).unwrap();
    assert_eq!(sweep.points.len(), 2);
    let (dead, fast) = (&sweep.points[0], &sweep.points[1]);
    assert_eq!(dead.searched.kind, "device-only");
    assert_eq!(fast.searched.kind, "edge-only", "{:?}", fast.searched);
    for point in &sweep.points {
        assert_eq!(point.baselines.len(), Baseline::ALL.len());
        let best = point.best_baseline().unwrap();
        // Never slower than the best baseline by more than 2 % at equal or better accuracy.
        assert!(
            point.searched.latency_s <= best.latency_s * 1.02 || !best.plan.feasible,
            "{point:?}"
        );
    }
    // Accuracy is cached across the grid: resuming from the full report runs nothing new.
    let plans = session.evaluator().evaluations();
    let again = session
        .sweep(&grid, 6, Some(sweep.clone()), |_, _, _| {})
        .unwrap();
    assert_eq!(again.points, sweep.points);
    assert_eq!(session.evaluator().evaluations(), plans);
    // A bad axis is a typed error naming it.
    grid.rates_bps = vec![-1.0];
    let err = session.sweep(&grid, 4, None, |_, _, _| {}).unwrap_err();
    assert!(err.to_string().contains("sweep.rates_bps"), "{err}");
}
