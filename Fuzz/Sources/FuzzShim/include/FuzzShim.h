#include <stddef.h>
#include <stdint.h>

/// Runs libFuzzer's driver (LLVMFuzzerRunDriver) with `callback` as the target: SwiftPM renames an executable's
/// `main`, so the fuzz targets call the driver themselves.
int securechannel_fuzz_main(int argc, char **argv, int (*callback)(const uint8_t *data, size_t size));
