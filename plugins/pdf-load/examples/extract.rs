//! Prints the text `pdf-load` extracts from a PDF, pages separated by form
//! feeds (as `pdftotext` does). Usage: `cargo run --example extract -- FILE`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: extract FILE.pdf");
        return ExitCode::from(2);
    };
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::from(2);
        }
    };
    match pdf_load::load_pdf(&bytes, &[], &pdf_load::Config::default()) {
        Ok(pages) => {
            for page in pages {
                if let Some(warning) = page.warning() {
                    eprintln!("warning: {warning}");
                }
                print!("{}\u{c}", page.text);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{path}: {e}");
            ExitCode::FAILURE
        }
    }
}
