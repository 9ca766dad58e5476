fn main() {
    println!("cargo:rerun-if-changed=src/codegen/unwind.c");
    cc::Build::new().file("src/codegen/unwind.c").opt_level(2).warnings(true).compile("rayzor_unwind");
}
