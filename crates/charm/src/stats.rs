//! Counting and timing hook-tool calls, per dispatch.

use crate::commands::Command;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Names the file the dispatch writes its [`ToolStats`] to, as JSON, when set.
pub const STATS_FILE_VAR: &str = "CHARM_TOOL_STATS";

/// One recorded call: the tool, its arguments and how long it took.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The tool and its arguments.
    #[serde(flatten)]
    pub command: Command,
    /// How long it took, in microseconds.
    pub micros: u64,
}

/// Every hook-tool call of one dispatch, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolStats {
    /// The calls, in order.
    pub calls: Vec<ToolCall>,
}

impl ToolStats {
    /// Records a call.
    pub fn record(&mut self, command: &Command, took: Duration) {
        self.calls.push(ToolCall {
            command: command.clone(),
            micros: took.as_micros().try_into().unwrap_or(u64::MAX),
        });
    }

    /// How many calls were made.
    pub fn count(&self) -> usize {
        self.calls.len()
    }

    /// How many calls each tool got.
    pub fn by_tool(&self) -> BTreeMap<&str, usize> {
        let mut m = BTreeMap::new();
        for c in &self.calls {
            *m.entry(c.command.tool.as_str()).or_default() += 1;
        }
        m
    }

    /// Time spent in tools.
    pub fn total(&self) -> Duration {
        Duration::from_micros(self.calls.iter().map(|c| c.micros).sum())
    }

    /// The command lines, in order.
    pub fn lines(&self) -> Vec<String> {
        self.calls.iter().map(|c| c.command.line()).collect()
    }
}
