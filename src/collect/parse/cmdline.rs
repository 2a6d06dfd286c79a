//! `/proc/PID/cmdline`: the process title.

/// The title in `cmdline`'s bytes: arguments separated by NULs become one line with spaces;
/// trailing NULs and spaces (php-fpm and postgres pad their rewritten title) are dropped;
/// bytes that are not UTF-8 become U+FFFD. None when nothing is left. Control characters are
/// kept: the renderers escape them.
pub fn title(bytes: &[u8]) -> Option<String> {
    let end = bytes
        .iter()
        .rposition(|&b| b != 0 && b != b' ')
        .map_or(0, |i| i + 1);
    if end == 0 {
        return None;
    }
    let joined: Vec<u8> = bytes[..end]
        .iter()
        .map(|&b| if b == 0 { b' ' } else { b })
        .collect();
    Some(String::from_utf8_lossy(&joined).into_owned())
}

#[cfg(test)]
mod tests {
    use super::title;

    #[test]
    fn joins_arguments_and_drops_padding() {
        assert_eq!(
            title(b"/usr/bin/python3\0-m\0http.server\0").as_deref(),
            Some("/usr/bin/python3 -m http.server")
        );
        // php-fpm overwrites argv in place and pads with spaces and NULs.
        assert_eq!(
            title(b"php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)     \0\0\0").as_deref(),
            Some("php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)")
        );
        assert_eq!(
            title(b"postgres: checkpointer ").as_deref(),
            Some("postgres: checkpointer")
        );
    }

    #[test]
    fn empty_and_hostile() {
        assert_eq!(title(b""), None);
        assert_eq!(title(b"\0\0 \0"), None);
        assert_eq!(
            title(b"a\xff\x1b[2Jb\0").as_deref(),
            Some("a\u{fffd}\x1b[2Jb")
        );
    }
}
