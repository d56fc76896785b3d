//! Arbitrary bytes through every layer of the parser: syntax tree, dump, records, typed
//! instructions and the stage graph. Any panic or hang is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(tree) = rbuild_parser::parse_syntax(&text) else { return };
    let _ = rbuild_parser::dump(&tree);
    let _ = rbuild_parser::records(&tree);
    let Ok(df) = rbuild_parser::Dockerfile::from_tree(tree) else { return };
    if let Ok(graph) = rbuild_parser::StageGraph::build(&df, &Default::default()) {
        let _ = graph.order_for(None);
        let _ = graph.to_dot();
    }
});
