//! What a run costs as it grows: time per order and memory per slice of the orders
//! (`--measure`), and the scale bench (`--scale 1000,10000,100000`) that runs the flow at
//! several sizes, each in its own process, and writes the curves as a table, a CSV and an SVG.
//!
//! Memory is the process's own account in `/proc/self/status`: `VmRSS` (resident now) and
//! `VmHWM` (the peak so far). Elsewhere than Linux both read 0.

use std::fmt::{self, Write as _};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Resident memory now and at its peak, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`.
    pub rss_kb: u64,
    /// `VmHWM`.
    pub hwm_kb: u64,
}

/// Reads `VmRSS` and `VmHWM` from `/proc/self/status` (zeros where there is none).
pub fn memory() -> Memory {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| parse_status(&s))
        .unwrap_or_default()
}

/// Reads `VmRSS` and `VmHWM` of process `pid` (another process, such as a server under load).
pub fn memory_of(pid: u32) -> Memory {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| parse_status(&s))
        .unwrap_or_default()
}

fn parse_status(status: &str) -> Memory {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss_kb: field("VmRSS:"),
        hwm_kb: field("VmHWM:"),
    }
}

/// One slice of the run: the orders that finished checkout in it, how long they took, and the
/// memory at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    /// Orders through checkout at the end of the slice (cumulative); for the last line, the
    /// run's orders, with `phase` "end".
    pub orders: usize,
    /// Orders in this slice.
    pub slice_orders: usize,
    /// Wall time of this slice.
    pub elapsed: Duration,
    /// Wall time since the run started.
    pub since_start: Duration,
    /// Memory at the end of the slice.
    pub memory: Memory,
    /// `"checkout"` for a slice of orders; `"deliver"` for a slice of the jobs left after
    /// checkout (`slice_orders` counts jobs); `"end"` for the line after delivery and the audit.
    pub phase: &'static str,
}

impl Slice {
    /// Wall time per order in this slice.
    pub fn per_order(&self) -> Duration {
        self.elapsed / u32::try_from(self.slice_orders.max(1)).unwrap_or(u32::MAX)
    }
}

impl fmt::Display for Slice {
    /// The machine-readable line the scale bench parses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "measure phase={} orders={} slice_orders={} slice_ms={:.1} since_start_ms={:.1} \
             per_order_us={} rss_kb={} hwm_kb={}",
            self.phase,
            self.orders,
            self.slice_orders,
            self.elapsed.as_secs_f64() * 1e3,
            self.since_start.as_secs_f64() * 1e3,
            self.per_order().as_micros(),
            self.memory.rss_kb,
            self.memory.hwm_kb
        )
    }
}

/// Counts orders through checkout and samples time and memory every `total / slices` of them.
#[derive(Debug)]
pub struct Meter {
    total: usize,
    step: usize,
    started: Instant,
    done: AtomicUsize,
    slices: Mutex<Vec<Slice>>,
    last: Mutex<(usize, Instant)>,
    slice_count: usize,
    /// After checkout: (jobs a slice, the next sample when this few are left, left at the last).
    delivery: Mutex<Option<(u64, u64, u64)>>,
}

impl Meter {
    /// A meter for `total` orders in `slices` slices, started now.
    pub fn new(total: usize, slices: usize) -> Self {
        let now = Instant::now();
        Meter {
            total,
            step: total.div_ceil(slices.max(1)).max(1),
            started: now,
            done: AtomicUsize::new(0),
            slices: Mutex::new(Vec::new()),
            last: Mutex::new((0, now)),
            slice_count: slices.max(1),
            delivery: Mutex::new(None),
        }
    }

    /// After checkout, `left` jobs still to deliver: samples each time another
    /// `1 / slices` of those left at the first call is delivered, as a `deliver` slice whose
    /// `slice_orders` counts the jobs delivered in it (and its time per order is per job).
    pub fn delivering(&self, left: u64) {
        let mut d = self.delivery.lock().unwrap_or_else(|e| e.into_inner());
        let (step, next, last_left) = *d.get_or_insert_with(|| {
            let step = (left / self.slice_count as u64).max(1);
            (step, left.saturating_sub(step), left)
        });
        if left <= next && left < last_left {
            *d = Some((step, left.saturating_sub(step), left));
            drop(d);
            let delivered = usize::try_from(last_left - left).unwrap_or(usize::MAX);
            self.sample_delivery(delivered);
        }
    }

    fn sample_delivery(&self, delivered: usize) {
        let now = Instant::now();
        let memory = memory();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let slice = Slice {
            orders: self.total,
            slice_orders: delivered,
            elapsed: now - last.1,
            since_start: now - self.started,
            memory,
            phase: "deliver",
        };
        last.1 = now;
        self.slices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(slice);
    }

    /// One more order through checkout (or found finished by an earlier start).
    pub fn order_done(&self) {
        let n = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        if n.is_multiple_of(self.step) || n == self.total {
            self.sample(n, "checkout");
        }
    }

    /// The line after delivery and the audit: the whole run.
    pub fn finish(&self) {
        self.sample(self.done.load(Ordering::SeqCst), "end");
    }

    fn sample(&self, orders: usize, phase: &'static str) {
        let now = Instant::now();
        let memory = memory();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let slice = Slice {
            orders,
            slice_orders: if phase == "end" {
                orders
            } else {
                orders.saturating_sub(last.0)
            },
            elapsed: if phase == "end" {
                now - self.started
            } else {
                now - last.1
            },
            since_start: now - self.started,
            memory,
            phase,
        };
        *last = (orders, now);
        self.slices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(slice);
    }

    /// The slices so far, in order.
    pub fn slices(&self) -> Vec<Slice> {
        self.slices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// One parsed `measure …` line of a run of `size` orders, labelled (`before`, `after`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Which build or version the run was.
    pub label: String,
    /// Orders in the run.
    pub size: usize,
    /// `checkout` or `end`.
    pub phase: String,
    /// Orders through checkout at the end of the slice.
    pub orders: usize,
    /// Microseconds per order in the slice (for `end`: over the whole run).
    pub per_order_us: u64,
    /// `VmRSS` at the end of the slice, KiB.
    pub rss_kb: u64,
    /// `VmHWM` at the end of the slice, KiB.
    pub hwm_kb: u64,
}

impl Point {
    /// Parses a `measure …` line (as [`Slice`] prints it) of a run of `size` orders.
    pub fn parse(label: &str, size: usize, line: &str) -> Option<Point> {
        let rest = line.trim().strip_prefix("measure ")?;
        let get = |k: &str| {
            rest.split_whitespace()
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
        };
        let num = |k: &str| get(k)?.parse::<u64>().ok();
        Some(Point {
            label: label.to_owned(),
            size,
            phase: get("phase")?.to_owned(),
            orders: usize::try_from(num("orders")?).ok()?,
            per_order_us: num("per_order_us")?,
            rss_kb: num("rss_kb")?,
            hwm_kb: num("hwm_kb")?,
        })
    }

    /// The CSV header of [`Point::csv`].
    pub const CSV_HEADER: &'static str = "label,size,phase,orders,per_order_us,rss_kb,hwm_kb";

    /// One CSV line.
    pub fn csv(&self) -> String {
        format!(
            "{},{},{},{},{},{},{}",
            self.label,
            self.size,
            self.phase,
            self.orders,
            self.per_order_us,
            self.rss_kb,
            self.hwm_kb
        )
    }

    /// Parses a line of [`Point::csv`].
    pub fn from_csv(line: &str) -> Option<Point> {
        let f: Vec<&str> = line.trim().split(',').collect();
        if f.len() != 7 || f[0] == "label" {
            return None;
        }
        Some(Point {
            label: f[0].to_owned(),
            size: f[1].parse().ok()?,
            phase: f[2].to_owned(),
            orders: f[3].parse().ok()?,
            per_order_us: f[4].parse().ok()?,
            rss_kb: f[5].parse().ok()?,
            hwm_kb: f[6].parse().ok()?,
        })
    }
}

/// The summary of one run (label, size): median time per order over the checkout slices (the
/// first one left out when there are others: it pays for start-up), and the peak memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Which build.
    pub label: String,
    /// Orders.
    pub size: usize,
    /// Median µs per order over the checkout slices after the first.
    pub per_order_us: u64,
    /// µs per order in the last checkout slice.
    pub last_slice_us: u64,
    /// µs per order over the whole run, delivery and audit included.
    pub whole_run_us: u64,
    /// Peak resident memory, KiB.
    pub peak_kb: u64,
}

/// One [`Summary`] per (label, size), in the order first seen.
pub fn summarise(points: &[Point]) -> Vec<Summary> {
    let mut keys: Vec<(String, usize)> = Vec::new();
    for p in points {
        if !keys.iter().any(|(l, s)| *l == p.label && *s == p.size) {
            keys.push((p.label.clone(), p.size));
        }
    }
    keys.into_iter()
        .map(|(label, size)| {
            let run: Vec<&Point> = points
                .iter()
                .filter(|p| p.label == label && p.size == size)
                .collect();
            let checkout: Vec<u64> = run
                .iter()
                .filter(|p| p.phase == "checkout")
                .map(|p| p.per_order_us)
                .collect();
            let mut steady: Vec<u64> = checkout.iter().skip(1).copied().collect();
            if steady.is_empty() {
                steady = checkout.clone();
            }
            steady.sort_unstable();
            Summary {
                per_order_us: steady.get(steady.len() / 2).copied().unwrap_or(0),
                last_slice_us: checkout.last().copied().unwrap_or(0),
                whole_run_us: run
                    .iter()
                    .find(|p| p.phase == "end")
                    .map_or(0, |p| p.per_order_us),
                peak_kb: run.iter().map(|p| p.hwm_kb).max().unwrap_or(0),
                label,
                size,
            }
        })
        .collect()
}

/// The summaries as a Markdown table.
pub fn markdown_table(summaries: &[Summary]) -> String {
    let mut s = String::from(
        "| build | orders | time per order, median of slices | last slice | whole run (delivery, audit) | peak memory |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    for m in summaries {
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.1} MB |",
            m.label,
            m.size,
            m.per_order_us as f64 / 1e3,
            m.last_slice_us as f64 / 1e3,
            m.whole_run_us as f64 / 1e3,
            m.peak_kb as f64 / 1024.0
        );
    }
    s
}

/// A chart's title, the value it plots, and its unit.
type Chart = (&'static str, fn(&Point) -> f64, &'static str);

/// One colour per label (Tableau 10 and six more): `scaling.csv` holds over a dozen labels, and
/// six colours made different runs look like one.
const COLOURS: [&str; 16] = [
    "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#000000", "#aec7e8", "#ff9896", "#98df8a", "#c5b0d5", "#c49c94",
];

/// Two charts side by side, as SVG: orders through checkout against time per order of each
/// slice, and against resident memory (peak so far); one line per (label, size), log-scaled
/// orders.
pub fn svg_chart(points: &[Point]) -> String {
    let series = {
        let mut keys: Vec<(String, usize)> = Vec::new();
        for p in points.iter().filter(|p| p.phase == "checkout") {
            if !keys.iter().any(|(l, s)| *l == p.label && *s == p.size) {
                keys.push((p.label.clone(), p.size));
            }
        }
        keys
    };
    let pts = |label: &str, size: usize| -> Vec<&Point> {
        points
            .iter()
            .filter(|p| p.phase == "checkout" && p.label == label && p.size == size)
            .collect()
    };
    let max_orders = points.iter().map(|p| p.orders).max().unwrap_or(10).max(10) as f64;
    let min_orders = points
        .iter()
        .filter(|p| p.phase == "checkout")
        .map(|p| p.orders)
        .min()
        .unwrap_or(1)
        .max(1) as f64;
    let (w, h, margin) = (460.0_f64, 300.0_f64, 60.0_f64);
    let labels: Vec<&str> = {
        let mut l: Vec<&str> = Vec::new();
        for (label, _) in &series {
            if !l.contains(&label.as_str()) {
                l.push(label);
            }
        }
        l
    };
    let mut out = String::new();
    let legend_h = 18.0 * series.len() as f64 + 10.0;
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">",
        2.0 * w + 80.0,
        h + legend_h + 20.0
    );
    let _ = writeln!(out, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let charts: [Chart; 2] = [
        (
            "time per order (ms) in each slice",
            |p: &Point| p.per_order_us as f64 / 1e3,
            "ms",
        ),
        (
            "peak resident memory (MB) so far",
            |p: &Point| p.hwm_kb as f64 / 1024.0,
            "MB",
        ),
    ];
    for (c, (title, value, unit)) in charts.iter().enumerate() {
        let x0 = c as f64 * (w + 40.0);
        let max_v = points
            .iter()
            .filter(|p| p.phase == "checkout")
            .map(value)
            .fold(0.0_f64, f64::max)
            .max(1e-9)
            * 1.1;
        let (pw, ph) = (w - margin - 10.0, h - 2.0 * margin);
        let x = |orders: f64| {
            let span = (max_orders.log10() - min_orders.log10()).max(1e-9);
            x0 + margin + (orders.max(min_orders).log10() - min_orders.log10()) / span * pw
        };
        let y = |v: f64| margin + ph - v / max_v * ph;
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"20\" font-size=\"13\" font-weight=\"bold\">{title}</text>",
            x0 + margin
        );
        let _ = writeln!(
            out,
            "<rect x=\"{:.1}\" y=\"{margin:.1}\" width=\"{pw:.1}\" height=\"{ph:.1}\" fill=\"none\" stroke=\"#999\"/>",
            x0 + margin
        );
        for i in 0..=4 {
            let v = max_v * f64::from(i) / 4.0;
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v:.1} {unit}</text>",
                x0 + margin - 4.0,
                y(v) + 4.0
            );
        }
        let mut tick = 10_f64.powf(min_orders.log10().floor());
        while tick <= max_orders * 1.0001 {
            if tick >= min_orders * 0.9999 {
                let _ = writeln!(
                    out,
                    "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1:.1}\" y2=\"{2:.1}\" stroke=\"#ddd\"/>\
                     <text x=\"{0:.1}\" y=\"{3:.1}\" text-anchor=\"middle\">{4}</text>",
                    x(tick),
                    margin,
                    margin + ph,
                    margin + ph + 14.0,
                    tick as u64
                );
            }
            tick *= 10.0;
        }
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">orders through checkout (log scale)</text>",
            x0 + margin + pw / 2.0,
            margin + ph + 30.0
        );
        for (label, size) in &series {
            let colour =
                COLOURS[labels.iter().position(|l| l == label).unwrap_or(0) % COLOURS.len()];
            let dash = match size.to_string().len() {
                n if n <= 4 => "",
                5 => " stroke-dasharray=\"6 3\"",
                _ => " stroke-dasharray=\"2 2\"",
            };
            let path: Vec<String> = pts(label, *size)
                .iter()
                .map(|p| format!("{:.1},{:.1}", x(p.orders as f64), y(value(p))))
                .collect();
            let _ = writeln!(
                out,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"{dash} points=\"{}\"/>",
                path.join(" ")
            );
        }
    }
    for (i, (label, size)) in series.iter().enumerate() {
        let colour = COLOURS[labels.iter().position(|l| l == label).unwrap_or(0) % COLOURS.len()];
        let dash = match size.to_string().len() {
            n if n <= 4 => "",
            5 => " stroke-dasharray=\"6 3\"",
            _ => " stroke-dasharray=\"2 2\"",
        };
        let yy = h + 10.0 + 18.0 * i as f64;
        let _ = writeln!(
            out,
            "<line x1=\"{m:.1}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{label}, {size} orders</text>",
            margin + 30.0,
            margin + 36.0,
            yy + 4.0,
            m = margin
        );
    }
    out.push_str("</svg>\n");
    out
}

/// The points of `out/scaling.csv` (none if there is no such file).
pub fn read_points(out: &std::path::Path) -> Vec<Point> {
    std::fs::read_to_string(out.join("scaling.csv"))
        .unwrap_or_default()
        .lines()
        .filter_map(Point::from_csv)
        .collect()
}

/// Replaces the points of (`label`, `size`) in `out/scaling.csv` with `new`, rewrites the CSV,
/// redraws `out/scaling.svg` from all of it, and returns all the points.
///
/// # Errors
/// A file that cannot be written.
pub fn merge_points(
    out: &std::path::Path,
    label: &str,
    size: usize,
    new: Vec<Point>,
) -> Result<Vec<Point>, String> {
    let mut points = read_points(out);
    points.retain(|p| !(p.label == label && p.size == size));
    points.extend(new);
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut csv = String::from(Point::CSV_HEADER);
    csv.push('\n');
    for p in &points {
        csv.push_str(&p.csv());
        csv.push('\n');
    }
    let csv_path = out.join("scaling.csv");
    std::fs::write(&csv_path, csv)
        .map_err(|e| format!("cannot write {}: {e}", csv_path.display()))?;
    let svg_path = out.join("scaling.svg");
    std::fs::write(&svg_path, svg_chart(&points))
        .map_err(|e| format!("cannot write {}: {e}", svg_path.display()))?;
    Ok(points)
}

/// The scale bench: what `--scale` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    /// Orders per run, each in its own process.
    pub sizes: Vec<usize>,
    /// The label of these runs in the CSV and the chart (`after` unless set).
    pub label: String,
    /// Where `scaling.csv` and `scaling.svg` are written (`docs` unless set).
    pub out: std::path::PathBuf,
    /// Arguments passed on to each run (after `--orders N --measure --no-progress --sandbox`).
    pub pass: Vec<String>,
}

/// Runs `exe` (this program) once per size with `--measure`, collects its `measure` lines,
/// merges them into `out/scaling.csv` (replacing earlier rows of the same label and size),
/// redraws `out/scaling.svg` from the whole CSV and returns the Markdown table of all of it,
/// with a note for each run whose invariants failed (measured all the same).
///
/// # Errors
/// A run that could not be started or printed no measurements, or a file that cannot be
/// written.
pub fn run_scale(exe: &std::path::Path, scale: &Scale) -> Result<String, String> {
    let mut points = read_points(&scale.out);
    let mut notes = Vec::new();
    for &size in &scale.sizes {
        let started = Instant::now();
        let output = std::process::Command::new(exe)
            .args([
                "--orders",
                &size.to_string(),
                "--measure",
                "--no-progress",
                "--sandbox",
            ])
            .args(&scale.pass)
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let new: Vec<Point> = stdout
            .lines()
            .filter_map(|l| Point::parse(&scale.label, size, l))
            .collect();
        if new.is_empty() {
            return Err(format!(
                "the run of {size} orders printed no measure lines ({}):\n{stdout}",
                output.status
            ));
        }
        if !output.status.success() {
            // Measured all the same; the table says so.
            let failed: Vec<&str> = stdout.lines().filter(|l| l.contains("[FAIL]")).collect();
            notes.push(format!(
                "the run of {size} orders ({}) exited with {}: {}",
                scale.label,
                output.status,
                failed.join("; ")
            ));
        }
        let _ = std::io::Write::flush(&mut std::io::stdout());
        eprintln!(
            "scale: {size} orders done in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        points = merge_points(&scale.out, &scale.label, size, new)?;
    }
    let mut out = markdown_table(&summarise(&points));
    for n in notes {
        out.push_str("\nnote: ");
        out.push_str(&n);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read() {
        let m = parse_status("Name:\tx\nVmHWM:\t  51652 kB\nVmRSS:\t   40000 kB\n");
        assert_eq!(
            m,
            Memory {
                rss_kb: 40000,
                hwm_kb: 51652
            }
        );
        if cfg!(target_os = "linux") {
            assert!(memory().hwm_kb > 0);
        }
    }

    #[test]
    fn meter_samples_every_slice_and_lines_parse_back() {
        let m = Meter::new(20, 10);
        for _ in 0..20 {
            m.order_done();
        }
        m.finish();
        let slices = m.slices();
        assert_eq!(slices.len(), 11);
        assert_eq!(slices[0].orders, 2);
        assert_eq!(slices[9].slice_orders, 2);
        assert_eq!(slices[10].phase, "end");
        let m = Meter::new(4, 2);
        for left in [100, 90, 49, 49, 20, 0] {
            m.delivering(left);
        }
        let d: Vec<(usize, &str)> = m
            .slices()
            .iter()
            .map(|s| (s.slice_orders, s.phase))
            .collect();
        assert_eq!(d, [(51, "deliver"), (49, "deliver")]);
        let points: Vec<Point> = slices
            .iter()
            .map(|s| Point::parse("after", 20, &s.to_string()).unwrap())
            .collect();
        assert_eq!(points[10].orders, 20);
        let back = Point::from_csv(&points[3].csv()).unwrap();
        assert_eq!(back, points[3]);
        let summary = summarise(&points);
        assert_eq!(summary.len(), 1);
        assert!(summary[0].peak_kb >= points[0].hwm_kb);
        assert!(markdown_table(&summary).contains("| after | 20 |"));
        let svg = svg_chart(&points);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
    }
}
