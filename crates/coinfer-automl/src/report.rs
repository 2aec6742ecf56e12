//! Rendering a [`SearchReport`] as Markdown, and its Pareto front.

use std::fmt::Write;

use coinfer_profile::Breakdown;

use crate::AutomlError;
use crate::baselines::{Baseline, BaselineResult};
use crate::env::EpisodeRecord;
use crate::evaluator::{ConfidenceBasis, DecisionConfidence, Evaluation, PlanEvaluator};
use crate::plan::SplitPlan;
use crate::refine::Refinement;
use serde::{Deserialize, Serialize};

/// What a search found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchReport {
    /// The best plan (fine-tuned, with test accuracy).
    pub plan: SplitPlan,
    /// Every DDPG episode.
    pub episodes: Vec<EpisodeRecord>,
    /// Distinct plans the agent evaluated.
    pub evaluations: usize,
    /// Every distinct plan evaluated by anyone in the session (for the accuracy–latency
    /// scatter).
    pub evaluated: Vec<Evaluation>,
    /// Baselines, when they were run.
    pub baselines: Vec<BaselineResult>,
    /// Validation accuracy of the unpruned backbone.
    pub backbone_accuracy: f32,
    /// Test accuracy of the unpruned backbone.
    pub backbone_test_accuracy: f32,
    /// Plans re-ranked by their fine-tuned validation accuracy before the final choice.
    #[serde(default)]
    pub reranked: Vec<Reranked>,
    /// The local refinement of the answer after the agent (absent in older reports).
    #[serde(default)]
    pub refinement: Option<Refinement>,
    /// Wall time of the session's phases (codecs, search, baselines, fine-tuning), seconds.
    pub seconds: f64,
    /// Wall time of every phase (absent in reports written before it was recorded).
    #[serde(default)]
    pub phases: PhaseTimes,
    /// The data the search ran on (its label).
    #[serde(default)]
    pub data: String,
    /// The data's class names in label order, when the caller gave them (image folders).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// How the validation images were chosen, and any warning about them (a backbone without a
    /// training record, a re-split because the backbone had seen some of them).
    #[serde(default)]
    pub notes: Vec<String>,
    /// The answer's paired comparison with the backbone on the validation images, as it was
    /// decided (by the search, or by re-ranking after fine-tuning); absent in reports written
    /// before it was recorded.
    #[serde(default)]
    pub confidence: Option<DecisionConfidence>,
    /// Bits per sample against validation accuracy of every codec at every split point
    /// ([`crate::rate`]; absent in reports written before it was recorded).
    #[serde(default)]
    pub rate_accuracy: Vec<crate::rate::RatePoint>,
}

/// Wall time of each phase of a search, seconds. The session records codecs, search,
/// baselines and fine-tuning; a caller that trains the backbone or profiles the machine
/// (the CLI) records those two.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PhaseTimes {
    /// Training the backbone (0 when it was loaded).
    pub training_s: f64,
    /// Profiling the blocks on this machine.
    pub profiling_s: f64,
    /// Training the codec families (autoencoders) and preparing the evaluator.
    pub codecs_s: f64,
    /// The DDPG episodes.
    pub search_s: f64,
    /// The baselines.
    pub baselines_s: f64,
    /// Fine-tuning, test accuracy and export of the chosen plan.
    pub finetune_s: f64,
}

impl PhaseTimes {
    /// Codecs + search + baselines + fine-tuning: what a [`crate::SearchSession`] measures.
    pub fn session_s(&self) -> f64 {
        self.codecs_s + self.search_s + self.baselines_s + self.finetune_s
    }

    /// Every phase.
    pub fn total_s(&self) -> f64 {
        self.training_s + self.profiling_s + self.session_s()
    }

    fn rows(&self) -> [(&'static str, f64); 6] {
        [
            ("training the backbone", self.training_s),
            ("profiling", self.profiling_s),
            ("codecs", self.codecs_s),
            ("DDPG search", self.search_s),
            ("baselines", self.baselines_s),
            ("fine-tuning and export", self.finetune_s),
        ]
    }
}

fn ms(seconds: f64) -> String {
    format!("{:.3}", seconds * 1e3)
}

/// The codec family table of every split (no pruning): payload bits per sample, compression
/// ratio against the float32 feature, validation accuracy and predicted latency, as Markdown.
pub fn codec_table(evaluator: &mut PlanEvaluator) -> Result<String, AutomlError> {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Codec families (validation accuracy with the codec inserted, no pruning)
"
    );
    let backbone = evaluator.backbone_accuracy()?;
    let _ = writeln!(
        md,
        "Backbone alone (float32, unsplit): {:.2}% validation accuracy.
",
        100.0 * backbone
    );
    let candidates = evaluator.space().candidates.clone();
    // Every unpruned plan at once (in parallel), then the tables in order.
    let decisions = crate::rate::unpruned_decisions(&candidates);
    let mut evaluations = evaluator.evaluate_all(&decisions)?.into_iter();
    for candidate in &candidates {
        let [c, h, w] = candidate.feature_shape;
        let float_bits = (c * h * w * 32) as f64;
        let _ = writeln!(
            md,
            "## Split {} (feature {c}×{h}×{w})
",
            candidate.split
        );
        let _ = writeln!(
            md,
            "| codec | bits / sample | compression vs float32 | accuracy | predicted latency (ms) |\n|---|---|---|---|---|"
        );
        for entry in &candidate.family.entries {
            let e = evaluations.next().ok_or_else(|| {
                AutomlError::InvalidDecision("an unpruned plan was not evaluated".into())
            })?;
            let _ = writeln!(
                md,
                "| {} | {} | {:.1}× | {:.2}% | {} |",
                entry.id,
                entry.bits_per_sample,
                float_bits / entry.bits_per_sample as f64,
                100.0 * e.accuracy,
                ms(e.latency.total)
            );
        }
        let _ = writeln!(md);
    }
    let points = crate::rate::rate_accuracy(evaluator, &[])?;
    md.push_str(&crate::rate::rate_markdown(&points));
    Ok(md)
}

/// The evaluations no other evaluation beats in both accuracy and latency, by latency.
pub fn pareto_front(evaluations: &[Evaluation]) -> Vec<&Evaluation> {
    let mut sorted: Vec<&Evaluation> = evaluations.iter().collect();
    sorted.sort_by(|a, b| {
        a.latency
            .total
            .total_cmp(&b.latency.total)
            .then(b.accuracy.total_cmp(&a.accuracy))
    });
    let mut front: Vec<&Evaluation> = Vec::new();
    for e in sorted {
        if front.last().is_none_or(|last| e.accuracy > last.accuracy) {
            front.push(e);
        }
    }
    front
}

fn breakdown_row(name: &str, b: &Breakdown) -> String {
    format!(
        "| {name} | {} | {} | {} | {} | {} | {} | {} |",
        ms(b.device),
        ms(b.encode),
        ms(b.transmit),
        ms(b.rtt),
        ms(b.decode),
        ms(b.edge),
        ms(b.total)
    )
}

/// One plan tried by re-ranking: its validation accuracy before and after a short three-step
/// fine-tune.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reranked {
    /// Split point.
    pub split: usize,
    /// Codec.
    pub codec: coinfer_codec::CodecId,
    /// Predicted latency, seconds.
    pub latency_s: f64,
    /// Validation accuracy as scored by the search (no fine-tuning).
    pub accuracy_before: f32,
    /// Validation accuracy after the three-step fine-tune.
    pub accuracy_after: f32,
    /// Whether it then met the accuracy tolerance.
    pub feasible: bool,
    /// The fine-tuned plan's paired comparison with the backbone on validation (absent in
    /// reports written before it was recorded).
    #[serde(default)]
    pub confidence: Option<DecisionConfidence>,
}

impl SearchReport {
    /// What the search says a user should deploy, in one paragraph: the chosen plan and its
    /// speed-up over the fixed plans (device-only, the raw image to the edge) and the best
    /// baseline — or, when a fixed plan is faster, that plan, and why.
    pub fn verdict(&self) -> String {
        let chosen = self.plan.predicted.total;
        let fixed = |b: Baseline| self.baselines.iter().find(|r| r.name == b.name());
        let mut text = String::new();
        match fixed(Baseline::DeviceOnly) {
            Some(device) if device.best.latency.total < chosen => {
                let _ = write!(
                    text,
                    "**Run everything on the device.** Device-only takes {} ms; the best \
                     offloading plan found needs {} ms (of which {} ms is the link: transmit \
                     + RTT). In this regime the link costs more than the computation it saves.",
                    ms(device.best.latency.total),
                    ms(chosen),
                    ms(self.plan.predicted.transmit + self.plan.predicted.rtt)
                );
                return text;
            }
            _ => {}
        }
        let kind = if self.plan.split == 0 {
            "send the input to the edge (edge-only)".to_string()
        } else {
            format!("split after block {}", self.plan.split)
        };
        let _ = write!(
            text,
            "**Deploy the chosen plan: {kind}, codec {}, {} ms predicted.**",
            self.plan.codec,
            ms(chosen)
        );
        if self.baselines.is_empty() {
            text.push_str(" No baselines were run, so nothing says how much faster it is.");
            return text;
        }
        for b in self.baselines.iter() {
            let speedup = b.best.latency.total / chosen;
            let _ = write!(text, " {}: {:.2}×;", b.name, speedup);
        }
        text.push_str(" (speed-up of the chosen plan over each baseline's best plan, predicted).");
        if let Some(edge) = self.best_edge_only() {
            let _ = write!(
                text,
                " Against the best way to send the whole image without coinfer ({}: {}, {:.0} bytes,                  {:.2}% validation accuracy, {} ms): {:.2}×.",
                edge.name,
                edge.best.codec,
                edge.best.payload_bits as f64 / 8.0,
                100.0 * edge.best.accuracy,
                ms(edge.best.latency.total),
                edge.best.latency.total / chosen
            );
        }
        text
    }

    /// The edge-only baseline (raw image, uniform quantizer or image file: PNG, JPEG, WebP)
    /// with the best reward: the strongest plan a user deploys without splitting.
    pub fn best_edge_only(&self) -> Option<&BaselineResult> {
        self.baselines
            .iter()
            .filter(|b| Baseline::from_name(&b.name).is_some_and(Baseline::is_edge_only))
            .max_by(|a, b| a.reward.total_cmp(&b.reward))
    }

    /// A Markdown summary: the plan, the verdict, its latency breakdown, the baselines, search
    /// cost.
    pub fn to_markdown(&self) -> String {
        let p = &self.plan;
        let mut md = String::new();
        let _ = writeln!(md, "# coinfer search report\n");
        let _ = writeln!(
            md,
            "Model `{}` (backbone digest `{}`) on `{}`, profiles: device `{}`, link `{}`, edge \
             `{}`.\n",
            p.model, p.backbone_digest, self.data, p.profiles[0], p.profiles[1], p.profiles[2]
        );
        if !self.classes.is_empty() {
            let _ = writeln!(md, "- classes (label order): {}", self.classes.join(", "));
        }
        for note in &self.notes {
            let _ = writeln!(md, "- {note}");
        }
        if !self.notes.is_empty() || !self.classes.is_empty() {
            let _ = writeln!(md);
        }
        let _ = writeln!(md, "## Best plan\n");
        let _ = writeln!(md, "| field | value |\n|---|---|");
        let _ = writeln!(md, "| split (blocks on the device) | {} |", p.split);
        let _ = writeln!(
            md,
            "| pruned blocks / ratios / kept filters | {:?} / {:?} / {:?} |",
            p.pruned_blocks,
            p.prune_ratios
                .iter()
                .map(|r| (r * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>(),
            p.kept_channels
        );
        let _ = writeln!(md, "| pruning recovery (when scored) | {} |", p.recovery);
        for step in &p.fine_tuning {
            let _ = writeln!(
                md,
                "| fine-tuning {:?} ({}): test accuracy | {:.2}% → {:.2}% |",
                step.step,
                step.budget,
                100.0 * step.accuracy_before,
                100.0 * step.accuracy_after
            );
        }
        if let Some(c) = &self.confidence {
            let basis = match c.basis {
                ConfidenceBasis::Search => "as searched",
                ConfidenceBasis::FineTuned => "after the three-step fine-tune",
            };
            let _ = writeln!(
                md,
                "| validation drop vs the backbone ({basis}) | {} |",
                c.summary()
            );
        }
        let _ = writeln!(md, "| codec | {} |", p.codec);
        let _ = writeln!(
            md,
            "| payload | {} bits ({:.1} bytes) |",
            p.payload_bits,
            p.payload_bits as f64 / 8.0
        );
        let _ = writeln!(
            md,
            "| validation accuracy (search, no fine-tuning) | {:.2}% |",
            100.0 * p.search_accuracy
        );
        if let Some(test) = p.test_accuracy {
            let _ = writeln!(
                md,
                "| test accuracy (after fine-tuning) | {:.2}% |",
                100.0 * test
            );
        }
        let _ = writeln!(
            md,
            "| backbone accuracy (validation / test) | {:.2}% / {:.2}% |",
            100.0 * self.backbone_accuracy,
            100.0 * self.backbone_test_accuracy
        );
        let _ = writeln!(md, "| reward | {:.4} |", p.reward);
        let _ = writeln!(md, "| predicted latency | {} ms |\n", ms(p.predicted.total));

        let _ = writeln!(md, "## Verdict\n\n{}\n", self.verdict());
        if let Some(r) = &self.refinement {
            let plan = |e: &Evaluation| {
                format!(
                    "split {}, {}, ratios {:?}: {} ms, {:.2}%",
                    e.split,
                    e.codec,
                    e.prune_ratios,
                    ms(e.latency.total),
                    100.0 * e.accuracy
                )
            };
            let _ = writeln!(
                md,
                "## Local refinement\n\nFrom the best plan of the agent and the trivial plans ({}) \
                 to {} ({} moves, {} plans evaluated beyond the agent's).\n",
                plan(&r.start),
                plan(&r.best),
                r.moves,
                r.evaluations
            );
        }
        if !self.reranked.is_empty() {
            let _ = writeln!(
                md,
                "## Re-ranking by fine-tuned accuracy\n\n| split | codec | latency (ms) | val. accuracy before | after the three-step fine-tune | within tolerance | validation drop after fine-tuning |\n|---|---|---|---|---|---|---|"
            );
            for r in &self.reranked {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.2}% | {:.2}% | {} | {} |",
                    r.split,
                    r.codec,
                    ms(r.latency_s),
                    100.0 * r.accuracy_before,
                    100.0 * r.accuracy_after,
                    if r.feasible { "yes" } else { "no" },
                    r.confidence.map_or_else(|| "—".into(), |c| c.summary())
                );
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md, "## Latency breakdown (ms, predicted)\n");
        let _ = writeln!(
            md,
            "| plan | device | encode | transmit | RTT | decode | edge | total |\n|---|---|---|---|---|---|---|---|"
        );
        let _ = writeln!(md, "{}", breakdown_row("best plan", &p.predicted));
        for b in &self.baselines {
            let _ = writeln!(md, "{}", breakdown_row(&b.name, &b.best.latency));
        }

        let _ = writeln!(md, "\n## Search methods\n");
        let _ = writeln!(
            md,
            "| method | reward | val. accuracy | latency (ms) | split | codec | distinct plans evaluated |\n|---|---|---|---|---|---|---|"
        );
        if let Some(best) = self
            .episodes
            .iter()
            .max_by(|a, b| a.reward.total_cmp(&b.reward))
        {
            let e = &best.evaluation;
            let _ = writeln!(
                md,
                "| DDPG ({} episodes) | {:.4} | {:.2}% | {} | {} | {} | {} |",
                self.episodes.len(),
                best.reward,
                100.0 * e.accuracy,
                ms(e.latency.total),
                e.split,
                e.codec,
                self.evaluations
            );
        }
        for b in &self.baselines {
            let _ = writeln!(
                md,
                "| {} | {:.4} | {:.2}% | {} | {} | {} | {} |",
                b.name,
                b.reward,
                100.0 * b.best.accuracy,
                ms(b.best.latency.total),
                b.best.split,
                b.best.codec,
                b.evaluations
            );
        }
        let _ = writeln!(
            md,
            "\n## Wall time per phase\n\n| phase | seconds |\n|---|---|"
        );
        for (phase, seconds) in self.phases.rows() {
            let _ = writeln!(md, "| {phase} | {seconds:.1} |");
        }
        let _ = writeln!(md, "| total | {:.1} |", self.phases.total_s());
        if !self.rate_accuracy.is_empty() {
            let _ = writeln!(md, "\n{}", crate::rate::rate_markdown(&self.rate_accuracy));
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coinfer_codec::CodecId;

    fn eval(accuracy: f32, total: f64) -> Evaluation {
        Evaluation {
            split: 1,
            prune_ratios: vec![],
            kept: vec![],
            codec: CodecId::Float32,
            payload_bits: 0,
            accuracy,
            paired: crate::evaluator::PairedDrop::default(),
            latency: Breakdown {
                total,
                ..Breakdown::default()
            },
            device_flops: 0,
        }
    }

    #[test]
    fn pareto_front_keeps_only_undominated_plans() {
        let all = [
            eval(0.8, 1.0),
            eval(0.9, 2.0),
            eval(0.85, 3.0),
            eval(0.7, 0.5),
            eval(0.95, 4.0),
        ];
        let front: Vec<(f32, f64)> = pareto_front(&all)
            .iter()
            .map(|e| (e.accuracy, e.latency.total))
            .collect();
        assert_eq!(front, [(0.7, 0.5), (0.8, 1.0), (0.9, 2.0), (0.95, 4.0)]);
    }
}
