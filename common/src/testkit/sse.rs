//! Server-sent events as the change feed's test clients read them: a text
//! buffer in, whole events out (comments skipped).

use serde_json::Value;

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct Sse {
    /// The change number of the event's id (`feed-seq`).
    pub id: Option<u64>,
    /// The feed id the event's id named.
    pub feed: Option<String>,
    pub event: String,
    pub data: Value,
}

/// Takes the next whole event out of `buf`, skipping comment-only blocks
/// (keep-alives); `None` until a whole event is there.
pub fn take(buf: &mut String) -> Option<Sse> {
    while let Some(end) = buf.find("\n\n") {
        let block: String = buf.drain(..end + 2).collect();
        let mut e = Sse {
            id: None,
            feed: None,
            event: "message".into(),
            data: Value::Null,
        };
        let mut data = String::new();
        for line in block.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => {
                    let id = crate::store::changes::EventId::parse(value).expect("a change id");
                    e.id = Some(id.seq);
                    e.feed = id.feed.map(str::to_owned);
                }
                "event" => e.event = value.to_owned(),
                "data" => data.push_str(value),
                _ => {}
            }
        }
        if !data.is_empty() {
            e.data = serde_json::from_str(&data).expect("JSON data");
            return Some(e);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_taken_whole_and_comments_skipped() {
        let mut buf =
            ": keep-alive\n\nid: 0a-7\nevent: record\ndata: {\"a\":1}\n\nid: 0a-8\nev".to_owned();
        let e = take(&mut buf).unwrap();
        assert_eq!((e.id, e.event.as_str()), (Some(7), "record"));
        assert_eq!(e.feed.as_deref(), Some("0a"));
        assert_eq!(e.data["a"], 1);
        assert_eq!(take(&mut buf), None);
        assert_eq!(buf, "id: 0a-8\nev");
    }
}
