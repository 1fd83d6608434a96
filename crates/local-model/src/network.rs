//! Each running model's own slice of the loopback network, `127.<N>.0.0/16`:
//! each application gets a block of 32 addresses of it, and each of its units
//! one address in the block (up to 30 units at once; 2,032 applications a
//! model; applications of models saved before blocks keep a `/24` each).
//! A model holds its slice with a lock file for as long as its controller runs,
//! and its workloads' Pebble servers, which outlive a controller that dies,
//! hold a second one (shared) for as long as they run; a new model takes a
//! slice neither is held on, so models (and tests running side by side) on one
//! machine never share an address, whatever ports their workloads listen on.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// Where the slices' lock files live.
fn locks_dir() -> PathBuf {
    std::env::temp_dir().join("local-model-networks")
}

/// The lock the workloads of slice `octet` hold (shared) while they run.
pub fn workloads_lock(octet: u8) -> PathBuf {
    locks_dir().join(format!("{octet}.workloads.lock"))
}

/// Whether no workload holds slice `octet` (a dead controller's may).
fn no_workloads(octet: u8) -> io::Result<bool> {
    let lock = File::create(workloads_lock(octet))?;
    // SAFETY: flock on a file descriptor we own; closing it lets the lock go.
    Ok(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0)
}

/// A claimed slice; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct Network {
    octet: u8,
    _lock: File,
}

impl Network {
    /// Claims slice `wanted` (a model's own, as saved), or with `None` the
    /// first one, from one of the process's own, that neither a running
    /// controller nor the workloads of a dead one hold (1 to 254). Fails when `wanted` is held by another
    /// running model, or when every slice is.
    pub fn claim(wanted: Option<u8>) -> io::Result<Network> {
        let dir = locks_dir();
        std::fs::create_dir_all(&dir)?;
        // A new model starts looking at a slice of its own process's, so that
        // one model's slice, free for the moment its controller restarts, is
        // not the first another process tries.
        let start = std::process::id() % 254;
        let candidates: Vec<u8> = match wanted {
            Some(octet) => vec![octet],
            None => (0..254).map(|i| ((start + i) % 254 + 1) as u8).collect(),
        };
        for octet in candidates {
            let lock = File::create(dir.join(format!("{octet}.lock")))?;
            // SAFETY: flock on a file descriptor we own; the lock goes with it.
            if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0
                && (wanted.is_some() || no_workloads(octet)?)
            {
                return Ok(Network { octet, _lock: lock });
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            match wanted {
                Some(octet) => format!(
                    "the model's addresses (127.{octet}.0.0/16) are held by another running model"
                ),
                None => "every loopback slice (127.1-254.0.0/16) is held by a running model".into(),
            },
        ))
    }

    /// The second octet of the slice.
    pub fn octet(&self) -> u8 {
        self.octet
    }

    /// The lock its workloads hold while they run ([`workloads_lock`]).
    pub fn workloads_lock(&self) -> PathBuf {
        workloads_lock(self.octet)
    }

    /// The address of unit `n` of an application saved with a `/24` of its
    /// own, third octet `subnet`.
    pub fn address(&self, subnet: u8, n: u32) -> String {
        format!("127.{}.{subnet}.{}", self.octet, n + 1)
    }

    /// The address at `slot` (below [`BLOCK_UNITS`]) of application block
    /// `block` (from [`FIRST_BLOCK`] to [`LAST_BLOCK`]).
    pub fn block_address(&self, block: u16, slot: u32) -> String {
        let third = block / BLOCKS_PER_OCTET;
        let fourth = u32::from(block % BLOCKS_PER_OCTET) * BLOCK_SIZE + slot + 1;
        format!("127.{}.{third}.{fourth}", self.octet)
    }
}

/// Addresses in an application's block.
const BLOCK_SIZE: u32 = 32;
/// Blocks that share a third octet.
const BLOCKS_PER_OCTET: u16 = 8;
/// The units an application can have at once: its block's addresses but the
/// first and the last.
pub const BLOCK_UNITS: u32 = BLOCK_SIZE - 2;
/// The first block: third octet 1 (0 is left out).
pub const FIRST_BLOCK: u16 = BLOCKS_PER_OCTET;
/// The last block: third octet 254.
pub const LAST_BLOCK: u16 = 254 * BLOCKS_PER_OCTET + BLOCKS_PER_OCTET - 1;

/// The slot of `address` in application block `block`, if it is in it.
pub fn slot_of(address: &str, block: u16) -> Option<u32> {
    let mut octets = address.rsplit('.');
    let fourth: u32 = octets.next()?.parse().ok()?;
    let third: u16 = octets.next()?.parse().ok()?;
    let base = u32::from(block % BLOCKS_PER_OCTET) * BLOCK_SIZE;
    (third == block / BLOCKS_PER_OCTET && (base + 1..=base + BLOCK_UNITS).contains(&fourth))
        .then(|| fourth - base - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// The tests run side by side in one process, so they would start at the
    /// same slice: one test's slice, dropped to be claimed again, could be
    /// taken by another in between. They take turns.
    static TURN: Mutex<()> = Mutex::new(());

    fn turn() -> std::sync::MutexGuard<'static, ()> {
        TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[test]
    fn a_slice_is_held_by_one_model_at_a_time() {
        let _turn = turn();
        let first = Network::claim(None).unwrap();
        let second = Network::claim(None).unwrap();
        assert_ne!(first.octet(), second.octet());
        let taken = Network::claim(Some(first.octet())).unwrap_err();
        assert!(
            taken.to_string().contains("another running model"),
            "{taken}"
        );
        let octet = first.octet();
        drop(first);
        let again = Network::claim(Some(octet)).unwrap();
        assert_eq!(again.address(3, 0), format!("127.{octet}.3.1"));
    }

    #[test]
    fn blocks_of_32_addresses_fill_the_slice() {
        let _turn = turn();
        let net = Network::claim(None).unwrap();
        let o = net.octet();
        assert_eq!(net.block_address(FIRST_BLOCK, 0), format!("127.{o}.1.1"));
        assert_eq!(
            net.block_address(FIRST_BLOCK + 1, 0),
            format!("127.{o}.1.33")
        );
        assert_eq!(
            net.block_address(FIRST_BLOCK + 7, BLOCK_UNITS - 1),
            format!("127.{o}.1.254")
        );
        assert_eq!(net.block_address(LAST_BLOCK, 0), format!("127.{o}.254.225"));
        assert_eq!(LAST_BLOCK - FIRST_BLOCK + 1, 2032);
        assert_eq!(slot_of(&format!("127.{o}.1.33"), FIRST_BLOCK + 1), Some(0));
        assert_eq!(slot_of(&format!("127.{o}.1.33"), FIRST_BLOCK), None);
        assert_eq!(slot_of(&format!("127.{o}.1.32"), FIRST_BLOCK), None);
    }

    #[test]
    fn a_slice_whose_workloads_outlive_their_controller_stays_theirs() {
        let _turn = turn();
        let first = Network::claim(None).unwrap();
        let octet = first.octet();
        let workloads = File::create(first.workloads_lock()).unwrap();
        // SAFETY: flock on a descriptor we own.
        assert_eq!(
            unsafe { libc::flock(workloads.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) },
            0
        );
        drop(first);
        let other = Network::claim(None).unwrap();
        assert_ne!(other.octet(), octet, "a new model passes it by");
        let own = Network::claim(Some(octet)).unwrap();
        assert_eq!(own.octet(), octet, "its own model takes it back");
        drop(workloads);
    }
}
