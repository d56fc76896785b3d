//! Arbitrary bytes through the shell-word lexer, with each escape token and option set.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rbuild_parser::shell::{Lexer, MapEnv};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let mut lexer = Lexer::new(if flags & 1 == 0 { '\\' } else { '`' });
    lexer.raw_quotes = flags & 2 != 0;
    lexer.raw_escapes = flags & 4 != 0;
    lexer.skip_unset_env = flags & 8 != 0;
    lexer.skip_process_quotes = flags & 16 != 0;
    let env = MapEnv::from_pairs([("A", "x y"), ("EMPTY", ""), ("P", "a/b*c")]);
    let _ = lexer.process_word(&text, &env);
    let _ = lexer.process_words(&text, &env);
});
