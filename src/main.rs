fn main() -> std::process::ExitCode {
    floatover::cli::main()
}
