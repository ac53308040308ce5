//! The demo pipeline: find the best competitor for a seller's product, in five recorded steps.
//!
//! ```text
//! keyword_generation (llm)     title + category → keywords        mock LLM, prompt and tokens recorded
//! candidate_search   (search)  keywords → ~2,000 products          total matches recorded
//! apply_filters      (filter)  price band, rating, reviews,        a verdict per candidate, with
//!                              category                            "$8.99 < $14.99 minimum"-style reasons
//! relevance_evaluation (llm)   removes accessories and parts       confidence + rationale per candidate
//! rank_and_select    (rank)    weighted score, one selected        score breakdown per candidate
//! ```
//!
//! A [`RunPlan`] says how a run goes wrong, if it does. The three ways the demo's runs go wrong
//! are the three a person debugging such a pipeline meets:
//!
//! - [`Fault::CreativeKeywords`]: the keyword model adds an off-topic keyword (`"phone case"`), the
//!   run's category filter is configured at department level (too loose), the judge only looks for
//!   parts, and the ranking weighs raw review counts — so a phone case is selected for a laptop
//!   stand. Every step on the way recorded why it let the phone case through.
//! - A premium seller product ([`demo_plan`] picks one): the price band leaves almost nothing, and
//!   the filter step eliminates more than 90% of the candidates.
//! - [`Fault::JudgeTimeout`]: the judge model stops answering part-way; the step fails with the
//!   error, what it judged before is kept, and the run fails.

use crate::catalog::{self, Catalog, Product, Rng};
use serde::Serialize;
use std::fmt;

/// The name every run of this pipeline is recorded under.
pub const PIPELINE: &str = "competitor_selection";

/// The search returns at most this many candidates (the total match count is recorded too).
pub const SEARCH_LIMIT: usize = 2_500;

/// The judge's batch size.
const JUDGE_BATCH: usize = 100;

/// How a run goes wrong, if it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    None,
    /// An off-topic keyword, a department-level category filter and a lenient judge.
    CreativeKeywords,
    /// The judge model times out part-way through.
    JudgeTimeout,
}

/// One run: the seller's product and how the run is configured.
#[derive(Clone, Debug, Serialize)]
pub struct RunPlan {
    pub seller: Product,
    pub fault: Fault,
}

impl RunPlan {
    /// How the category filter compares categories in this run.
    pub fn category_scope(&self) -> CategoryScope {
        match self.fault {
            Fault::CreativeKeywords => CategoryScope::Department,
            _ => CategoryScope::Exact,
        }
    }

    /// The run's configuration, as the pipeline would log it.
    pub fn config(&self) -> serde_json::Value {
        serde_json::json!({
            "keyword_model": "mock-keywords-1",
            "keyword_temperature": if self.fault == Fault::CreativeKeywords { 1.3 } else { 0.2 },
            "category_scope": self.category_scope(),
            "judge_model": "mock-judge-2",
            "judge_timeout_s": 30,
            "ranking_weights": { "reviews": 0.5, "rating": 0.3, "price_proximity": 0.2 },
        })
    }
}

/// What the pipeline selected, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Selection {
    pub competitor: Product,
    pub score: f64,
}

/// Why a run failed.
#[derive(Debug)]
pub enum PipelineError {
    /// The judge model did not answer in time.
    JudgeTimeout {
        model: &'static str,
        batch: usize,
        batches: usize,
        judged: usize,
    },
    /// Nothing survived the filters and the judge.
    NoCandidates,
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipelineError::JudgeTimeout {
                model,
                batch,
                batches,
                judged,
            } => write!(
                f,
                "judge model {model} timed out after 30 s on batch {batch} of {batches} \
                 ({judged} candidates judged before it)"
            ),
            PipelineError::NoCandidates => {
                f.write_str("no candidate survived the filters and the judge")
            }
        }
    }
}

impl std::error::Error for PipelineError {}

/// The demo's first runs: varied sellers from several categories, with the three that go wrong
/// at fixed places (4th: phone case for a laptop stand; 7th: a premium product whose filters
/// eliminate > 90%; 10th: the judge times out).
pub fn demo_plan(catalog: &Catalog) -> Vec<RunPlan> {
    let categories = [
        "Laptop Stands",
        "Monitor Arms",
        "Desk Lamps",
        "Laptop Stands",
        "Keyboards",
        "Water Bottles",
        "Laptop Stands",
        "Headphones",
        "USB-C Hubs",
        "Yoga Mats",
        "Tablet Stands",
        "Phone Cases",
    ];
    categories
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let products = catalog.in_category(name);
            let seller = match i {
                // The premium laptop stand: the price band (0.5×–2×) leaves few candidates.
                6 => products.last()?,
                // A mid-priced product, a different one each time.
                _ => products.get(products.len() * (3 + i % 4) / 10)?,
            };
            let fault = match i {
                3 => Fault::CreativeKeywords,
                9 => Fault::JudgeTimeout,
                _ => Fault::None,
            };
            Some(RunPlan {
                seller: (*seller).clone(),
                fault,
            })
        })
        .collect()
}

/// A run for round `round` of the demo's live phase: a seller from any category, and every so
/// often one of the faults again.
pub fn live_plan(catalog: &Catalog, round: u64) -> Option<RunPlan> {
    let mut rng = Rng::new(round.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let category = rng.pick(catalog::CATEGORIES);
    if category.name == "Laptop Accessories" {
        return live_plan(catalog, round + 1000);
    }
    let products = catalog.in_category(category.name);
    let seller = (*rng.pick(&products)).clone();
    let fault = match round % 12 {
        5 if category.name == "Laptop Stands" => Fault::CreativeKeywords,
        11 => Fault::JudgeTimeout,
        _ => Fault::None,
    };
    Some(RunPlan { seller, fault })
}

/// One run of the pipeline, recorded as an execution named [`PIPELINE`].
///
/// Its recorded input is the seller's product and the run's configuration, as a real pipeline's
/// would be; how the demo makes a run go wrong is not recorded.
#[xray::execution(
    name = "competitor_selection",
    tags("demo"),
    input = serde_json::json!({ "seller": plan.seller, "config": plan.config() })
)]
pub fn find_competitor(plan: &RunPlan, catalog: &Catalog) -> Result<Selection, PipelineError> {
    let keywords = keyword_generation(&plan.seller, plan.fault == Fault::CreativeKeywords);
    let candidates = candidate_search(&keywords, catalog);
    let scope = plan.category_scope();
    let kept = apply_filters(&plan.seller, candidates, scope);
    let relevant = relevance_evaluation(&plan.seller, kept, plan.fault)?;
    rank_and_select(&plan.seller, relevant).ok_or(PipelineError::NoCandidates)
}

/// Step 1: a mock LLM turns the seller's title and category into search keywords.
#[xray::step(kind = "llm", input = serde_json::json!({ "title": seller.title, "category": seller.category }), metadata(model = "mock-keywords-1", temperature = if creative { 1.3 } else { 0.2 }))]
pub fn keyword_generation(seller: &Product, creative: bool) -> Vec<String> {
    let prompt = format!(
        "You write marketplace search queries. Product: \"{}\" (category: {}). \
         Return 3-5 short keyword phrases a shopper would type to find the same kind of product.",
        seller.title, seller.category
    );
    let nouns = catalog::category(seller.category)
        .map(|c| c.nouns)
        .unwrap_or_default();
    let mut keywords: Vec<String> = nouns.iter().map(|n| n.to_lowercase()).collect();
    if creative {
        // The model "helpfully" adds something buyers of the product also search for.
        keywords.push("phone case".into());
        xray::reasoning(format!(
            "Phrases naming the product type ({}), plus 'phone case': shoppers who buy {} often \
             buy phone cases too, which widens recall.",
            nouns.join(", "),
            seller.category.to_lowercase()
        ));
    } else {
        xray::reasoning(format!(
            "Phrases naming the product type: {}.",
            nouns.join(", ")
        ));
    }
    xray::metadata("prompt", &prompt);
    xray::metadata(
        "tokens",
        &serde_json::json!({
            "prompt": prompt.split_whitespace().count() * 4 / 3,
            "completion": keywords.iter().map(|k| k.split_whitespace().count()).sum::<usize>() * 2,
        }),
    );
    keywords
}

/// Step 2: keyword search over the catalog; thousands of candidates, each recorded with the
/// keyword that found it, so that a candidate's history starts where it entered the run.
#[xray::step(kind = "search", skip(catalog), output = false)]
pub fn candidate_search(keywords: &[String], catalog: &Catalog) -> Vec<Product> {
    let (hits, total) = catalog.search(keywords, SEARCH_LIMIT);
    // The search's limit cuts matches before anything is recorded: the step's funnel says so
    // (3,419 matches -> 2,500 returned), instead of looking like it kept everything it saw.
    xray::candidates(Some(total as u64), Some(hits.len() as u64));
    // The rule that cut them, beside the counts: which matches a limit keeps is a decision too.
    xray::filters(&serde_json::json!({
        "limit": SEARCH_LIMIT,
        "keeps": "the matches with the most keywords, then the most reviews",
    }));
    let lowered: Vec<String> = keywords.iter().map(|k| k.to_lowercase()).collect();
    for p in &hits {
        let title = p.title.to_lowercase();
        // Every hit's title contains one of the keywords: the first names why it was found.
        let keyword = lowered
            .iter()
            .find(|k| title.contains(k.as_str()))
            .map_or("", String::as_str);
        xray::evaluate(&p.asin)
            .label(&p.title)
            .check_in("keyword", keyword, &lowered)
            .record();
    }
    xray::output(&serde_json::json!({
        "total_matches": total,
        "returned": hits.len(),
        "first": hits.iter().take(5).map(|p| (&p.asin, &p.title)).collect::<Vec<_>>(),
    }));
    hits.into_iter().cloned().collect()
}

/// How the category filter compares categories.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CategoryScope {
    /// The candidate's category must be the seller's.
    Exact,
    /// Any category of the seller's department passes (too loose: phone cases pass for laptop
    /// stands, both being "Electronics Accessories").
    Department,
}

/// Step 3: price band, rating, reviews and category; a verdict and reasons for every candidate.
#[xray::step(kind = "filter", skip(candidates), output = false)]
pub fn apply_filters(
    seller: &Product,
    candidates: Vec<Product>,
    scope: CategoryScope,
) -> Vec<Product> {
    let (lo, hi) = (seller.price * 0.5, seller.price * 2.0);
    let (min_rating, min_reviews) = (3.8, 50);
    let allowed = match scope {
        CategoryScope::Exact => vec![seller.category],
        CategoryScope::Department => catalog::department_categories(seller.department),
    };
    xray::filters(&serde_json::json!({
        "price": { "min": lo, "max": hi, "rule": "0.5x-2x the seller's price" },
        "min_rating": min_rating,
        "min_reviews": min_reviews,
        "category_scope": scope,
        "categories": allowed,
    }));
    let kept: Vec<Product> = candidates
        .into_iter()
        .filter(|c| {
            xray::evaluate(&c.asin)
                .label(&c.title)
                .check_range("price", c.price, lo..=hi)
                .check_min("rating", c.rating, min_rating)
                .check_min("reviews", c.reviews, min_reviews)
                .check_in("category", c.category, &allowed)
                .passed()
        })
        .collect();
    xray::output(&serde_json::json!({
        "kept": kept.len(),
        "first": kept.iter().take(5).map(|p| (&p.asin, &p.title)).collect::<Vec<_>>(),
    }));
    kept
}

/// Step 4: a mock LLM judge removes what is not a competitor (accessories and parts), with a
/// confidence and a one-line rationale per candidate.
#[xray::step(
    kind = "llm",
    skip_all,
    output = false,
    metadata(model = "mock-judge-2")
)]
pub fn relevance_evaluation(
    seller: &Product,
    candidates: Vec<Product>,
    fault: Fault,
) -> Result<Vec<Product>, PipelineError> {
    xray::input(&serde_json::json!({
        "seller": seller.title,
        "candidates": candidates.len(),
        "prompt": "Is this candidate a competing product, not an accessory or a replacement part? \
                   Answer yes/no, a confidence and one line of rationale.",
    }));
    // What reached the judge, whether or not it got through them all (a timeout half way
    // leaves the rest unjudged: the step then reads 515 in, 300 judged, nothing out).
    xray::candidates(Some(candidates.len() as u64), None);
    let batches = candidates.len().div_ceil(JUDGE_BATCH);
    let mut kept = Vec::new();
    for (b, batch) in candidates.chunks(JUDGE_BATCH).enumerate() {
        if fault == Fault::JudgeTimeout && b == batches / 2 {
            return Err(PipelineError::JudgeTimeout {
                model: "mock-judge-2",
                batch: b + 1,
                batches,
                judged: b * JUDGE_BATCH,
            });
        }
        for c in batch {
            let (relevant, confidence, rationale) = judge(seller, c);
            let verdict = xray::evaluate(&c.asin)
                .label(&c.title)
                .metric("confidence", confidence)
                .snapshot(&serde_json::json!({ "rationale": rationale }))
                .check("competitor", relevant, || rationale.clone())
                .passed();
            if verdict {
                kept.push(c.clone());
            }
        }
    }
    xray::output(&serde_json::json!({ "kept": kept.len(), "batches": batches }));
    Ok(kept)
}

/// The mock judge: it was asked about parts and accessories, and that is all it checks.
fn judge(seller: &Product, c: &Product) -> (bool, f64, String) {
    if c.is_part() {
        (
            false,
            0.94,
            format!(
                "a part or accessory ({}), not a {}",
                c.category,
                singular(seller.category)
            ),
        )
    } else if c.category != seller.category {
        (
            true,
            0.55,
            format!(
                "a complete product, not a part; category {} differs",
                c.category
            ),
        )
    } else {
        (true, 0.88, format!("a complete {}", singular(c.category)))
    }
}

fn singular(category: &str) -> String {
    category.trim_end_matches('s').to_lowercase()
}

/// Step 5: a weighted score (reviews 50%, rating 30%, price proximity 20%), its breakdown for
/// every candidate, and the selection with its reason.
#[xray::step(kind = "rank", skip_all, output = false)]
pub fn rank_and_select(seller: &Product, candidates: Vec<Product>) -> Option<Selection> {
    // Reviews are normalized by the most-reviewed candidate of this run — across categories
    // when other categories got this far, which is how a phone case outscores laptop stands.
    let max_reviews = candidates
        .iter()
        .map(|c| c.reviews)
        .max()
        .unwrap_or(1)
        .max(1);
    xray::input(&serde_json::json!({
        "candidates": candidates.len(),
        "weights": { "reviews": 0.5, "rating": 0.3, "price_proximity": 0.2 },
        "max_reviews": max_reviews,
    }));
    let mut ranked: Vec<(f64, Product)> = candidates
        .into_iter()
        .map(|c| {
            let reviews = f64::from(c.reviews) / f64::from(max_reviews);
            let rating = c.rating / 5.0;
            let proximity = 1.0 - ((c.price - seller.price).abs() / seller.price).min(1.0);
            let score = 0.5 * reviews + 0.3 * rating + 0.2 * proximity;
            xray::evaluate(&c.asin)
                .label(&c.title)
                .score(score)
                .metric("reviews", reviews)
                .metric("rating", rating)
                .metric("price_proximity", proximity)
                .record();
            (score, c)
        })
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut ranked = ranked.into_iter();
    let (score, competitor) = ranked.next()?;
    let runner_up = ranked
        .next()
        .map(|(s, c)| format!("; runner-up {} at {s:.3}", c.asin))
        .unwrap_or_default();
    xray::select(
        &competitor.asin,
        format!(
            "highest weighted score {score:.3} ({} reviews, rating {}, ${:.2} vs ${:.2}){runner_up}",
            competitor.reviews, competitor.rating, competitor.price, seller.price
        ),
    );
    xray::output(
        &serde_json::json!({ "asin": competitor.asin, "title": competitor.title, "category": competitor.category, "score": score }),
    );
    Some(Selection { competitor, score })
}

/// Records every run of `plans`, returning each plan beside its outcome.
pub fn run_all(
    plans: Vec<RunPlan>,
    catalog: &Catalog,
) -> Vec<(RunPlan, Result<Selection, PipelineError>)> {
    plans
        .into_iter()
        .map(|plan| {
            let outcome = find_competitor(&plan, catalog);
            (plan, outcome)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_plan_has_the_three_runs_that_go_wrong() {
        let catalog = Catalog::generate(7, catalog::DEFAULT_SIZE);
        let plan = demo_plan(&catalog);
        assert_eq!(plan.len(), 12);
        assert_eq!(plan[3].seller.category, "Laptop Stands");
        assert_eq!(plan[3].fault, Fault::CreativeKeywords);
        assert_eq!(plan[9].fault, Fault::JudgeTimeout);
    }
}
