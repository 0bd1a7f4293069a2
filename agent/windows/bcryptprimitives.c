/*
 * Test-only shim for running onshi-agent.exe under Wine 8 (CI smoke test, DESIGN §4).
 *
 * Rust's standard library on Windows draws randomness from ProcessPrng in
 * bcryptprimitives.dll, which Wine 8 does not export, so the .exe fails to load. This DLL,
 * placed beside the .exe under Wine only, exports ProcessPrng on top of RtlGenRandom
 * (advapi32's SystemFunction036). Never ship it: real Windows has the real one.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
