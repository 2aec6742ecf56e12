//! `coinfer plot`: redraws a finished search's plots from its `report.json`, or prints its
//! rate–accuracy points as JSON lines.

use std::path::Path;

use coinfer_automl::SearchReport;

type CliResult<T> = Result<T, Box<dyn std::error::Error>>;

/// `coinfer plot`: redraws the plots of a finished search from its `report.json`.
pub fn replot(report_path: &Path) -> CliResult<()> {
    let text = std::fs::read_to_string(report_path)
        .map_err(|e| format!("{}: {e}", report_path.display()))?;
    let report: SearchReport = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a search report: {e}", report_path.display()))?;
    let out = report_path.parent().unwrap_or(Path::new("."));
    coinfer_automl::plots::draw_search(&report, out)?;
    println!("plots written to {}", out.display());
    Ok(())
}

/// The rate–accuracy points of a finished search's `report.json`, as JSON lines on stdout
/// (`coinfer plot --report FILE --rate-json`).
pub fn print_rate_json(report_path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(report_path)
        .map_err(|e| format!("{}: {e}", report_path.display()))?;
    let report: SearchReport = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a search report: {e}", report_path.display()))?;
    if report.rate_accuracy.is_empty() {
        return Err(format!(
            "{}: the report has no rate–accuracy points (written before they were recorded)",
            report_path.display()
        )
        .into());
    }
    print!(
        "{}",
        coinfer_automl::rate::rate_json_lines(&report.rate_accuracy)
    );
    Ok(())
}
