"""The CPU a speed measurement is recorded for (export's cpu_backends, `auto`)."""

import platform

from cfnc_edge.runtime.backends.openvino_backend import cpu_name

ZEN1 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 23
model\t\t: 1
model name\t: AMD EPYC
flags\t\t: fpu sse sse2 fma avx avx2 bmi2
processor\t: 1
model name\t: AMD EPYC
"""


def test_two_cpus_that_share_a_model_name_are_told_apart():
    # a virtual machine may show "AMD EPYC" for Zen 1 and Zen 4 alike: the backend measured
    # fastest on one is no evidence for the other (peers-cpu-zen1.md: 2.6x apart)
    zen4 = ZEN1.replace("cpu family\t: 23", "cpu family\t: 25").replace("avx2", "avx2 avx512f avx512_bf16")
    assert cpu_name(ZEN1).startswith("AMD EPYC (family 23 model 1), ") and cpu_name(ZEN1).endswith(", avx2")
    assert cpu_name(zen4).endswith(", avx2 avx512f avx512_bf16")
    assert cpu_name(ZEN1) != cpu_name(zen4)


def test_a_cpu_without_cpuinfo_fields_still_has_a_name():
    # no /proc/cpuinfo (macOS, Windows): platform's name and the architecture, no family or extensions
    name = cpu_name("")
    assert name == f"{platform.processor() or 'unknown CPU'}, {platform.machine()}"
    assert cpu_name() == cpu_name()  # this machine: stable from call to call
