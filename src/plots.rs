//! SVG line plots for the report: loss curves and ROC curves (plotters, SVG backend).

use std::path::Path;

use plotters::prelude::*;

use crate::SynthError;

fn plot_err(path: &Path, e: impl std::fmt::Display) -> SynthError {
    SynthError::Io { path: path.to_path_buf(), source: std::io::Error::other(e.to_string()) }
}

const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// A line plot of named (x, y) series as an SVG file.
pub fn line_plot(path: &Path, title: &str, x_label: &str, y_label: &str, series: &[(String, Vec<(f64, f64)>)], unit_square: bool) -> Result<(), SynthError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| SynthError::Io { path: dir.to_path_buf(), source: e })?;
    }
    let pts = series.iter().flat_map(|s| s.1.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in pts {
        if x.is_finite() && y.is_finite() {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if unit_square || !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| plot_err(path, e))?;
    chart.configure_mesh().x_desc(x_label).y_desc(y_label).draw().map_err(|e| plot_err(path, e))?;
    for (i, (name, s)) in series.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(s.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()), c.stroke_width(2)))
            .map_err(|e| plot_err(path, e))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))?;
    Ok(())
}

/// ROC curves (false-positive rate, true-positive rate) of named classifiers.
pub fn roc_plot(path: &Path, title: &str, curves: &[(String, Vec<(f64, f64)>)]) -> Result<(), SynthError> {
    line_plot(path, title, "false-positive rate", "true-positive rate", curves, true)
}
