//! Runs a file source on `data` (written to a scratch file) to the end.

use std::sync::atomic::{AtomicBool, AtomicU64};

use sluice_runtime::sources::{Source, SourceBatch, SourceContext, SourceFeedback};

/// A scratch file for this process.
pub fn scratch(name: &str, data: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("sluice-fuzz-{}-{name}", std::process::id()));
    std::fs::write(&path, data).expect("the scratch file is written");
    path
}

/// Reads everything; every record handed over decodes.
pub fn drain(source: &mut dyn Source) {
    let (stop, paused, progress) = (AtomicBool::new(false), AtomicBool::new(false), AtomicU64::new(0));
    let feedback = SourceFeedback::default();
    let mut send = |b: SourceBatch| {
        for s in &b.spans {
            sluice_codec::Record::decode(&b.data[s.start as usize..s.end as usize])
                .expect("a record the source encoded decodes");
        }
        Ok(())
    };
    let mut ctx = SourceContext::new(64, 1 << 16, &mut send, &stop, &paused, &progress, &feedback);
    let _ = source.run(None, &mut ctx);
}
