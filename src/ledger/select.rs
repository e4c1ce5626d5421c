//! Automatic device selection from measurements: among the adapters present now, the one with
//! the best passing result for this model and workload, by an objective. Without measurements,
//! the documented rule (`AdapterDesc::default_rank`: discrete, integrated, other, software last).

use std::collections::BTreeMap;

use super::compare::format_params;
use super::record::{Record, WorkloadKey};
use super::stats::median;
use crate::gpu::adapter::backend_rank;
use crate::gpu::AdapterDesc;

/// What "best" means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Objective {
    /// Highest median decode tokens/s.
    #[default]
    Throughput,
    /// Lowest median USD per 1M tokens.
    Cost,
    /// Lowest median joules per token.
    Energy,
}

impl std::str::FromStr for Objective {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "throughput" | "speed" => Ok(Objective::Throughput),
            "cost" => Ok(Objective::Cost),
            "energy" => Ok(Objective::Energy),
            _ => Err(format!("`{s}`: expected throughput, cost or energy")),
        }
    }
}

impl Objective {
    pub fn name(self) -> &'static str {
        match self {
            Objective::Throughput => "throughput",
            Objective::Cost => "cost",
            Objective::Energy => "energy",
        }
    }

    fn figure(self, r: &Record) -> Option<f64> {
        match self {
            Objective::Throughput => Some(r.results.decode_tok_s),
            Objective::Cost => r.cost.usd_per_mtok,
            Objective::Energy => r.cost.joules_per_token,
        }
        .filter(|v| v.is_finite() && *v > 0.0)
    }

    fn better(self, a: f64, b: f64) -> bool {
        match self {
            Objective::Throughput => a > b,
            Objective::Cost | Objective::Energy => a < b,
        }
    }

    fn describe(self, v: f64) -> String {
        match self {
            Objective::Throughput => format!("{v:.1} decode tok/s"),
            Objective::Cost => format!("${v:.3} per 1M tokens"),
            Objective::Energy => format!("{v:.3} J/token"),
        }
    }
}

/// Why an adapter was chosen.
#[derive(Clone, Debug, PartialEq)]
pub enum Basis {
    /// From ledger records of this model on `workload` (`exact`: the requested one).
    Measured {
        objective: Objective,
        value: f64,
        runs: usize,
        workload: WorkloadKey,
        exact: bool,
    },
    /// From `AdapterDesc::default_rank`, there being no usable records.
    Rule,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    /// `AdapterDesc::index` of the chosen adapter.
    pub index: usize,
    pub basis: Basis,
    /// One line for the user: what was chosen and why.
    pub reason: String,
    /// A suggestion (e.g. to run `tokenmill bench`), when selection fell back to the rule.
    pub hint: Option<String>,
}

/// The rule without measurements: discrete, integrated, virtual, other, software last; native
/// compute APIs before GL; then enumeration order.
pub fn rule_order(d: &AdapterDesc) -> (u32, u32, usize) {
    (d.default_rank(), backend_rank(&d.backend), d.index)
}

fn passing(r: &Record) -> bool {
    r.correctness.passed && r.results.decode_tok_s.is_finite() && r.results.decode_tok_s > 0.0
}

/// Picks an adapter for `key`'s model and workload. Only passing records of adapters present
/// in `adapters` count. With no record of the exact workload, the same model's measured
/// workload covering the most present adapters (then the nearest in size) is used. None only
/// when `adapters` is empty.
pub fn select(
    adapters: &[AdapterDesc],
    records: &[Record],
    key: &WorkloadKey,
    objective: Objective,
) -> Option<Selection> {
    let rule = adapters.iter().min_by_key(|d| rule_order(d))?;
    // Per workload of this model: per present adapter, its passing records.
    let mut by_workload: BTreeMap<WorkloadKey, BTreeMap<usize, Vec<&Record>>> = BTreeMap::new();
    for r in records.iter().filter(|r| passing(r)) {
        let k = r.workload_key();
        if k.file_hash != key.file_hash || k.quant != key.quant {
            continue;
        }
        for d in adapters.iter().filter(|d| r.adapter.matches(d)) {
            by_workload
                .entry(k.clone())
                .or_default()
                .entry(d.index)
                .or_default()
                .push(r);
        }
    }
    let distance = |k: &WorkloadKey| {
        let d = |a: u32, b: u32| u64::from(a.abs_diff(b));
        d(k.prompt_tokens, key.prompt_tokens)
            + d(k.gen_tokens, key.gen_tokens)
            + d(k.batch, key.batch) * 1000
            + d(k.context, key.context) / 16
    };
    let chosen = by_workload.get_key_value(key).or_else(|| {
        by_workload
            .iter()
            .min_by_key(|(k, per)| (std::cmp::Reverse(per.len()), distance(k)))
    });
    let Some((wk, per_adapter)) = chosen else {
        return Some(Selection {
            index: rule.index,
            basis: Basis::Rule,
            reason: format!(
                "{} ({}): no measurements of this model on the adapters present; chosen by rule (discrete GPU, then integrated, then others, software last)",
                rule.name, rule.backend
            ),
            hint: Some("run `tokenmill bench` to measure the adapters and choose by result".into()),
        });
    };
    let mut objective_used = objective;
    let mut ranked = rank(per_adapter, objective);
    let mut fallback = String::new();
    if ranked.is_empty() {
        objective_used = Objective::Throughput;
        ranked = rank(per_adapter, objective_used);
        fallback = format!(
            " ({} figures missing from the records; chose by throughput)",
            objective.name()
        );
    }
    let (index, value, runs) = ranked[0];
    let d = adapters.iter().find(|d| d.index == index)?;
    let model = per_adapter[&index][0];
    let runner_up = ranked
        .get(1)
        .and_then(|(i, v, _)| {
            let o = adapters.iter().find(|d| d.index == *i)?;
            Some(format!(
                "; next: {} {}",
                o.name,
                objective_used.describe(*v)
            ))
        })
        .unwrap_or_default();
    let exact = wk == key;
    Some(Selection {
        index,
        reason: format!(
            "{} ({}): best measured {} for {} {} {} (prompt {}, generate {}{}) over {} run{}{}{}",
            d.name,
            d.backend,
            objective_used.describe(value),
            model.model.name,
            format_params(model.model.parameters),
            wk.quant,
            wk.prompt_tokens,
            wk.gen_tokens,
            if exact {
                ""
            } else {
                ", the nearest measured workload"
            },
            runs,
            if runs == 1 { "" } else { "s" },
            runner_up,
            fallback
        ),
        basis: Basis::Measured {
            objective: objective_used,
            value,
            runs,
            workload: wk.clone(),
            exact,
        },
        hint: None,
    })
}

/// Present adapters with a figure for `objective`, best first: (index, median, runs).
fn rank(
    per_adapter: &BTreeMap<usize, Vec<&Record>>,
    objective: Objective,
) -> Vec<(usize, f64, usize)> {
    let mut v: Vec<(usize, f64, usize)> = per_adapter
        .iter()
        .filter_map(|(i, rs)| {
            let figs: Vec<f64> = rs.iter().filter_map(|r| objective.figure(r)).collect();
            Some((*i, median(&figs)?, figs.len()))
        })
        .collect();
    v.sort_by(|a, b| {
        if objective.better(a.1, b.1) {
            std::cmp::Ordering::Less
        } else if objective.better(b.1, a.1) {
            std::cmp::Ordering::Greater
        } else {
            a.0.cmp(&b.0)
        }
    });
    v
}

/// The best passing median decode tok/s any workload reached on this adapter, with the record
/// naming that workload; for `tokenmill devices`.
pub fn best_decode<'a>(records: &'a [Record], d: &AdapterDesc) -> Option<(f64, &'a Record)> {
    let mut per_key: BTreeMap<WorkloadKey, Vec<&Record>> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| passing(r) && r.adapter.matches(d))
    {
        per_key.entry(r.workload_key()).or_default().push(r);
    }
    per_key
        .values()
        .filter_map(|rs| {
            let v: Vec<f64> = rs.iter().map(|r| r.results.decode_tok_s).collect();
            Some((median(&v)?, rs[0]))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
}
