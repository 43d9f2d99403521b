//! From placed glyphs to page text, by geometry.
//!
//! Glyphs are grouped by writing direction (so rotated pages and rotated
//! text read upright), then chained in content order into runs: a run ends
//! where the baseline moves, the pen jumps back, or a gap wider than a
//! column gutter opens. Inside a run a space is inferred wherever the gap
//! between two glyphs exceeds [`SPACE_GAP`] of the font size. A vertical
//! gutter crossed by (almost) no run, with several wide runs on each side,
//! splits the page into columns read one after the other (recursively, for
//! three columns); lines spanning the gutter (titles, footers) stay in place
//! between the column bands. Runs sharing a baseline form a line, lines are
//! ordered top to bottom, words hyphenated at line ends (soft hyphens, and
//! hard hyphens between lowercase letters) are joined, and the text
//! is normalised: ligatures expanded, NFC.

use unicode_normalization::UnicodeNormalization;

use crate::glyph_text::GlyphText;

/// A gap wider than this fraction of the font size is a space.
const SPACE_GAP: f64 = 0.15;
/// A gap wider than this fraction of the font size ends a run.
const RUN_GAP: f64 = 1.0;

/// One glyph in device space.
#[derive(Debug, Clone)]
pub struct PlacedGlyph {
    pub text: GlyphText,
    /// Origin (start of the baseline).
    pub x0: f64,
    pub y0: f64,
    /// End of the glyph's advance along the baseline.
    pub x1: f64,
    pub y1: f64,
    /// The text-space x axis in device space (writing direction).
    pub dir: [f64; 2],
    /// Font height in device space.
    pub size: f64,
}

#[derive(Debug, Clone)]
struct Run {
    text: String,
    x0: f64,
    x1: f64,
    y: f64,
    size: f64,
    /// A space glyph was shown after the last glyph.
    trailing_space: bool,
    /// Position of the last glyph's origin and its text (overstrike check).
    last: (f64, GlyphText),
}

/// The text of a page's glyphs.
pub fn page_text(glyphs: Vec<PlacedGlyph>) -> String {
    // Group by quantised direction: 0 = left to right, 1 = bottom to top, …
    let mut groups: [Vec<(PlacedGlyph, [f64; 3])>; 4] = Default::default();
    for g in glyphs {
        let values = [g.x0, g.y0, g.x1, g.y1, g.size];
        if values.iter().any(|v| !v.is_finite()) {
            continue;
        }
        let k = quadrant(g.dir);
        let rot = |x: f64, y: f64| match k {
            1 => (y, -x),
            2 => (-x, -y),
            3 => (-y, x),
            _ => (x, y),
        };
        let (x0, y0) = rot(g.x0, g.y0);
        let (x1, _) = rot(g.x1, g.y1);
        let idx = usize::try_from(k).unwrap_or(0).min(3);
        if let Some(group) = groups.get_mut(idx) {
            group.push((g, [x0, larger(x1, x0), y0]));
        }
    }
    let mut order: Vec<usize> = (0..4).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(groups.get(k).map_or(0, Vec::len)));
    let mut parts = Vec::new();
    for k in order {
        let Some(group) = groups.get(k) else { continue };
        if group.is_empty() {
            continue;
        }
        let runs = make_runs(group);
        let mut lines = Vec::new();
        for block in order_blocks(runs, 0) {
            lines.extend(block_lines(block));
        }
        let text = join_lines(&lines);
        if !text.trim().is_empty() {
            parts.push(text);
        }
    }
    normalize(&parts.join("\n"))
}

/// The writing direction `dir` rounded to a quarter turn: 0 = left to right,
/// 1 = bottom to top, 2 = right to left, 3 = top to bottom. The same as
/// rounding `atan2(dir)` to a multiple of 90 degrees, without the `atan2`
/// (a libm call per glyph in the Wasm build), which is kept for exact ties;
/// within a rounding error of 45 degrees either neighbour may be chosen.
fn quadrant(dir: [f64; 2]) -> i64 {
    let [dx, dy] = dir;
    let (ax, ay) = (dx.abs(), dy.abs());
    if ax > ay {
        if dx > 0.0 { 0 } else { 2 }
    } else if ay > ax {
        if dy > 0.0 { 1 } else { 3 }
    } else {
        let angle = dy.atan2(dx);
        if angle.is_finite() { ((angle / std::f64::consts::FRAC_PI_2).round() as i64).rem_euclid(4) } else { 0 }
    }
}

/// The larger of two finite numbers. `f64::max` compiles to a call to libm's
/// `fmax` for wasm32 (its NaN rules differ from Wasm's `f64.max`); glyph
/// coordinates reaching here are finite, so a comparison does.
fn larger(a: f64, b: f64) -> f64 {
    if b > a { b } else { a }
}

fn make_runs(glyphs: &[(PlacedGlyph, [f64; 3])]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut current: Option<Run> = None;
    for (g, [x0, x1, y]) in glyphs {
        let (x0, x1, y) = (*x0, *x1, *y);
        let size = if g.size > 0.0 { g.size } else { 1.0 };
        let text = g.text.as_str();
        let is_space = text.chars().all(char::is_whitespace);
        if text.is_empty() {
            continue;
        }
        if let Some(run) = current.as_mut() {
            let s = larger(size, run.size);
            let same_line = (y - run.y).abs() <= 0.5 * s;
            let backwards = x0 < run.x1 - 0.7 * s;
            let far = x0 > run.x1 + RUN_GAP * s;
            if same_line && !backwards && !far {
                if is_space {
                    run.trailing_space = true;
                    continue;
                }
                // A glyph drawn again over itself (fake bold) is shown once.
                if run.last.1 == g.text && (x0 - run.last.0).abs() < 0.1 * s {
                    continue;
                }
                if run.trailing_space || x0 - run.x1 > SPACE_GAP * s {
                    run.text.push(' ');
                }
                run.text.push_str(text);
                run.trailing_space = false;
                run.x1 = larger(run.x1, x1);
                run.last = (x0, g.text.clone());
                continue;
            }
            if let Some(done) = current.take() {
                runs.push(done);
            }
        }
        if is_space {
            continue;
        }
        current =
            Some(Run { text: text.to_string(), x0, x1, y, size, trailing_space: false, last: (x0, g.text.clone()) });
    }
    if let Some(done) = current {
        runs.push(done);
    }
    runs
}

/// Splits runs into blocks read in order: columns left to right inside the
/// bands between lines that span the gutter.
fn order_blocks(runs: Vec<Run>, depth: usize) -> Vec<Vec<Run>> {
    if depth >= 3 || runs.len() < 6 || runs.len() > 20_000 {
        return vec![runs];
    }
    let Some(gutter) = find_gutter(&runs) else {
        return vec![runs];
    };
    let mut spanning: Vec<Run> = Vec::new();
    let mut sides: Vec<(Run, bool)> = Vec::new();
    for run in runs {
        if run.x1 <= gutter + 0.5 {
            sides.push((run, false));
        } else if run.x0 >= gutter - 0.5 {
            sides.push((run, true));
        } else {
            spanning.push(run);
        }
    }
    spanning.sort_by(|a, b| b.y.total_cmp(&a.y));
    let bands = spanning.len() + 1;
    let mut left: Vec<Vec<Run>> = vec![Vec::new(); bands];
    let mut right: Vec<Vec<Run>> = vec![Vec::new(); bands];
    for (run, is_right) in sides {
        let band = spanning.iter().filter(|s| s.y > run.y).count();
        let target = if is_right { right.get_mut(band) } else { left.get_mut(band) };
        if let Some(target) = target {
            target.push(run);
        }
    }
    let mut blocks = Vec::new();
    let mut spanning = spanning.into_iter();
    for (l, r) in left.into_iter().zip(right) {
        if !l.is_empty() {
            blocks.extend(order_blocks(l, depth + 1));
        }
        if !r.is_empty() {
            blocks.extend(order_blocks(r, depth + 1));
        }
        if let Some(s) = spanning.next() {
            blocks.push(vec![s]);
        }
    }
    blocks
}

/// An x position with no run across it (or very few, such as a title),
/// several wide runs on both sides, and a clear gap around it.
fn find_gutter(runs: &[Run]) -> Option<f64> {
    let xmin = runs.iter().map(|r| r.x0).fold(f64::INFINITY, f64::min);
    let xmax = runs.iter().map(|r| r.x1).fold(f64::NEG_INFINITY, f64::max);
    let width = xmax - xmin;
    if !(width.is_finite() && width > 1.0) {
        return None;
    }
    let mut sizes: Vec<f64> = runs.iter().map(|r| r.size).collect();
    sizes.sort_by(f64::total_cmp);
    let median = sizes.get(sizes.len() / 2).copied().unwrap_or(10.0);
    let wide = |r: &Run| r.x1 - r.x0 >= 0.2 * width;
    let bins = 400usize;
    let step = width / bins as f64;
    let mut best: Option<(usize, f64, f64)> = None; // (crossing, -gap, x)
    let mut i = bins / 5;
    while i < bins * 4 / 5 {
        let x = xmin + step * i as f64;
        let crossing = runs.iter().filter(|r| r.x0 < x && r.x1 > x).count();
        if crossing * 10 > runs.len() {
            i += 1;
            continue;
        }
        let left = runs.iter().filter(|r| r.x1 <= x && wide(r)).count();
        let right = runs.iter().filter(|r| r.x0 >= x && wide(r)).count();
        if left < 3 || right < 3 {
            i += 1;
            continue;
        }
        // Width of the gap: from the rightmost left-side end to the leftmost
        // right-side start, among non-spanning runs.
        let gap_lo = runs.iter().filter(|r| r.x1 <= x).map(|r| r.x1).fold(f64::NEG_INFINITY, f64::max);
        let gap_hi = runs.iter().filter(|r| r.x0 >= x).map(|r| r.x0).fold(f64::INFINITY, f64::min);
        let gap = gap_hi - gap_lo;
        if gap >= 0.8 * median {
            let candidate = (crossing, -gap, (gap_lo + gap_hi) / 2.0);
            let better = match best {
                None => true,
                Some((c, g, _)) => crossing < c || (crossing == c && -gap < g),
            };
            if better {
                best = Some(candidate);
            }
        }
        i += 1;
    }
    best.map(|(_, _, x)| x)
}

/// Groups a block's runs into lines, top to bottom.
fn block_lines(mut runs: Vec<Run>) -> Vec<String> {
    runs.sort_by(|a, b| b.y.total_cmp(&a.y));
    let mut lines: Vec<(f64, f64, Vec<Run>)> = Vec::new();
    for run in runs {
        let joined = lines.last_mut().filter(|(y, size, _)| (y - run.y).abs() <= 0.4 * size.min(run.size).max(0.5));
        match joined {
            Some((_, _, members)) => members.push(run),
            None => lines.push((run.y, run.size, vec![run])),
        }
    }
    lines
        .into_iter()
        .map(|(_, _, mut members)| {
            members.sort_by(|a, b| a.x0.total_cmp(&b.x0));
            let mut text = String::new();
            let mut end: Option<(f64, bool)> = None;
            for run in members {
                if let Some((x1, space)) = end
                    && (space || run.x0 - x1 > SPACE_GAP * run.size)
                    && !text.ends_with(' ')
                {
                    text.push(' ');
                }
                text.push_str(&run.text);
                end = Some((run.x1, run.trailing_space));
            }
            text.trim_end().to_string()
        })
        .filter(|line| !line.trim().is_empty())
        .collect()
}

/// Joins lines with newlines, joining words hyphenated at a line end.
fn join_lines(lines: &[String]) -> String {
    let mut out = String::new();
    let mut iter = lines.iter().peekable();
    while let Some(line) = iter.next() {
        let next_starts_lower = iter.peek().and_then(|n| n.chars().next()).is_some_and(char::is_lowercase);
        if let Some(stem) = line.strip_suffix('\u{AD}')
            && next_starts_lower
        {
            out.push_str(stem);
            continue;
        }
        // A hard hyphen between lowercase letters at a line end is taken as
        // hyphenation and dropped, as poppler's `pdftotext` does (a compound
        // word broken at its own hyphen loses it: the lesser error).
        if let Some(stem) = line.strip_suffix('-')
            && stem.chars().last().is_some_and(char::is_lowercase)
            && next_starts_lower
        {
            out.push_str(stem);
            continue;
        }
        out.push_str(line.strip_suffix('\u{AD}').unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Expands ligatures, drops soft hyphens and control characters, and
/// normalises to NFC.
pub fn normalize(text: &str) -> String {
    // Printable ASCII, tabs and line breaks are already what this returns.
    if text.bytes().all(|b| matches!(b, b' '..=b'~' | b'\n' | b'\t')) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{FB00}' => out.push_str("ff"),
            '\u{FB01}' => out.push_str("fi"),
            '\u{FB02}' => out.push_str("fl"),
            '\u{FB03}' => out.push_str("ffi"),
            '\u{FB04}' => out.push_str("ffl"),
            '\u{FB05}' | '\u{FB06}' => out.push_str("st"),
            '\u{AD}' | '\u{200B}' | '\u{FEFF}' => {}
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    if unicode_normalization::is_nfc_quick(out.chars()) == unicode_normalization::IsNormalized::Yes {
        return out;
    }
    out.nfc().collect()
}

#[cfg(test)]
mod tests {
    use super::{normalize, quadrant};

    #[test]
    fn normalize_keeps_ascii_and_composes_the_rest() {
        assert_eq!(normalize("plain text\n\tline"), "plain text\n\tline");
        assert_eq!(normalize("a\u{7}b\rc\u{7f}"), "abc");
        assert_eq!(normalize("\u{FB01}ne cafe\u{301} \u{AD}x"), "fine caf\u{e9} x");
        assert_eq!(normalize("d\u{e9}j\u{e0}"), "d\u{e9}j\u{e0}");
    }

    fn by_atan2([dx, dy]: [f64; 2]) -> i64 {
        let angle = dy.atan2(dx);
        if angle.is_finite() { ((angle / std::f64::consts::FRAC_PI_2).round() as i64).rem_euclid(4) } else { 0 }
    }

    #[test]
    fn quadrant_matches_rounded_atan2() {
        let mut dirs = vec![[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]];
        dirs.extend([[-1.0, 1.0], [0.0, 0.0], [f64::NAN, 1.0], [f64::INFINITY, 2.0], [1e-300, -1e-300]]);
        for step in 0..720 {
            let angle = f64::from(step) * std::f64::consts::PI / 360.0;
            dirs.push([angle.cos() * 12.0, angle.sin() * 12.0]);
        }
        for dir in dirs {
            let (ax, ay) = (dir[0].abs(), dir[1].abs());
            if ax != ay && (ax - ay).abs() <= 1e-12 * ax.max(ay) {
                continue; // 45 degrees up to rounding: either neighbour is right
            }
            assert_eq!(quadrant(dir), by_atan2(dir), "direction {dir:?}");
        }
    }
}
