//! The controlling terminal, for questions zerobox asks while the command
//! runs (`--build-profile`): open `/dev/tty`, switch it to single-key mode
//! for one answer and put the command's own mode back afterwards.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// The controlling terminal, opened read-write (not the command's stdin or
/// stdout: those may be pipes, and the answer must not mix with them).
pub fn open() -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY)
        .open("/dev/tty")
}

/// A terminal mode, saved to be put back.
#[derive(Clone, Copy)]
pub struct Mode(libc::termios);

pub fn get_mode(tty: &File) -> io::Result<Mode> {
    // SAFETY: an all-zero termios is a valid value (plain integers);
    // tcgetattr fills it in.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a valid termios for the call to write.
    if unsafe { libc::tcgetattr(tty.as_raw_fd(), &mut t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Mode(t))
}

pub fn set_mode(tty: &File, mode: &Mode) -> io::Result<()> {
    // SAFETY: `mode.0` is a termios read by tcgetattr; TCSANOW applies it.
    if unsafe { libc::tcsetattr(tty.as_raw_fd(), libc::TCSANOW, &mode.0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One key at a time, no echo, no signals from keys (Ctrl-C is read as a
/// byte and answered as `[x]`), output post-processing on (`\n` → `\r\n`).
pub fn single_key(from: &Mode) -> Mode {
    let mut t = from.0;
    t.c_lflag &= !(libc::ICANON | libc::ECHO | libc::ISIG | libc::IEXTEN);
    t.c_iflag &= !(libc::IXON | libc::ICRNL);
    t.c_oflag |= libc::OPOST | libc::ONLCR;
    t.c_cc[libc::VMIN] = 1;
    t.c_cc[libc::VTIME] = 0;
    Mode(t)
}

/// The terminal's width in columns (80 when unknown).
pub fn columns(tty: &File) -> usize {
    // SAFETY: an all-zero winsize is valid; TIOCGWINSZ fills it in.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize through the pointer.
    let rc = unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    if rc == 0 && ws.ws_col > 0 {
        usize::from(ws.ws_col)
    } else {
        80
    }
}

/// Drop input typed before the question (it was meant for the command,
/// or is a stale key that must not answer a question not yet seen).
pub fn flush_input(tty: &File) {
    // SAFETY: tcflush takes integers only.
    unsafe {
        libc::tcflush(tty.as_raw_fd(), libc::TCIFLUSH);
    }
}

/// Is the terminal in line mode (canonical input), as a shell leaves it?
/// Full-screen programs switch it off.
pub fn is_canonical(m: &Mode) -> bool {
    m.0.c_lflag & libc::ICANON != 0
}
