//! The `report` target: the error report payload decoder.

use onward_protocol::report::{Report, MAX_REPORT_DETAIL};

/// `Report::decode` on arbitrary bytes. A decoded report keeps its detail within
/// [`MAX_REPORT_DETAIL`] bytes and re-encodes to exactly the accepted input (only the
/// canonical encoding is accepted); its text form is one line.
pub fn report(data: &[u8]) {
    let Ok(decoded) = Report::decode(data) else {
        return;
    };
    assert!(decoded.detail.len() <= MAX_REPORT_DETAIL);
    assert_eq!(
        decoded.encode(),
        data,
        "an accepted input is not the report's encoding"
    );
    let _ = decoded.to_string();
}
