//! `asyncmsg names`: the names published on this host, one line each
//! (`NAME  pid P  chid C`), or `no names published`.

use anyhow::Context;
use asyncmsg::PublishedName;
use clap::Args;

/// Arguments of `asyncmsg names` (none yet).
#[derive(Debug, Clone, Args)]
pub struct NamesArgs {}

/// Runs `asyncmsg names`.
pub fn run(_args: &NamesArgs) -> anyhow::Result<()> {
    let names = asyncmsg::published_names().context("cannot list the published names")?;
    print!("{}", render(&names));
    Ok(())
}

/// The listing: one line per name, names aligned, or `no names published`.
pub fn render(names: &[PublishedName]) -> String {
    if names.is_empty() {
        return "no names published\n".to_owned();
    }
    let width = names
        .iter()
        .map(|n| n.name.chars().count())
        .max()
        .unwrap_or(0);
    names
        .iter()
        .map(|n| format!("{:<width$}  pid {}  chid {}\n", n.name, n.pid, n.chid))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_lists_or_says_none() {
        assert_eq!(render(&[]), "no names published\n");
        let names = [
            PublishedName {
                name: "a".into(),
                pid: 10,
                chid: 1,
            },
            PublishedName {
                name: "sensors".into(),
                pid: 20,
                chid: 3,
            },
        ];
        assert_eq!(
            render(&names),
            "a        pid 10  chid 1\nsensors  pid 20  chid 3\n"
        );
    }
}
