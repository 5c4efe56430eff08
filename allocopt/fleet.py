"""The EuroHPC JU GPU partitions, as data for the synthetic round generator.

Every real figure below comes from /work/shared/domain.md §2 (machines table)
and §1.1 (EuroHPC shares, Regulation (EU) 2021/1173 Art. 17), with the source
URL beside each entry. Figures marked UNCERTAIN there are marked so here.

Exchange rates are NOT in any source. A reference GPU-hour is one NVIDIA A100
GPU-hour; the rates below are ASSUMPTIONS, chosen as plausible round numbers
for mixed HPC and AI work:

====================  ===========  ===================================================
Accelerator           Rate         Assumption and reasoning
====================  ===========  ===================================================
NVIDIA A100 (any      1.0          The reference, by definition (40, 64 and 80 GB
memory size)                       variants are treated alike).
NVIDIA H100 64 GB     2.0          ASSUMPTION: roughly twice an A100 on mixed
                                   FP64/AI work.
NVIDIA GH200 96 GB    2.2          ASSUMPTION: an H100 with more and faster memory,
                                   about 10 % above the H100.
AMD MI250X, one GCD   0.9          ASSUMPTION: half a module; below an A100 on AI,
                                   above it on FP64 vector work; 0.9 as a blend.
====================  ===========  ===================================================

Other assumptions made here (none is in the sources):

- LUMI-G is billed per GCD (one MI250X = two GCDs, 64 GB each); domain §2 says
  LUMI's billing unit is UNCERTAIN.
- MeluXina's GPU count, 800 (~200 nodes x 4 A100 40 GB), is UNCERTAIN (domain §2).
- Deucalion's A100 80 GB partition: node count unknown (domain §2, §6). ASSUMED
  32 nodes x 4 GPUs = 128 GPUs.
- Exact EuroHPC shares of JUPITER and Leonardo are UNCERTAIN; the regulation's
  50 % ceiling (high-end) and 35 % ceiling (mid-range) are used for every machine.
- Award units: 1,000 GPU-h on the large machines, 500 GPU-h on mid-range ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from allocopt.round import Arch, Stack

HOURS_PER_YEAR = 8_760  # nameplate: 24 x 365, as Vega publishes it (domain §2)
HIGH_END_SHARE = 0.5  # Regulation (EU) 2021/1173 Art. 17: at most 50 % (domain §1.1)
MID_RANGE_SHARE = 0.35  # same article: at most 35 % on mid-range machines (domain §1.1)


@dataclass(frozen=True)
class Partition:
    """One real GPU partition of the EuroHPC fleet."""

    id: str
    name: str
    site: str
    accelerator: str
    stack: Stack
    cpu_arch: Arch
    gpu_memory_gb: float  # memory of the unit billed as one GPU
    gpus: int  # units billed as one GPU (LUMI-G: GCDs)
    tier: Literal["high-end", "mid-range"]
    eurohpc_share: float  # fraction of the machine's time that is the Union's
    exchange_rate: float  # reference (A100) GPU-hours per GPU-hour: an ASSUMPTION
    award_unit: int  # GPU-hours per award unit: an ASSUMPTION
    uncertain: str = ""  # what about this entry could not be confirmed
    source: str = ""

    @property
    def nameplate_gpu_hours(self) -> int:
        """GPUs x 8,760 h: a year's hours, ignoring downtime."""
        return self.gpus * HOURS_PER_YEAR


FLEET: tuple[Partition, ...] = (
    Partition(
        # https://apps.fz-juelich.de/jsc/hps/jupiter/configuration.html (4x GH200 per node, 96 GB HBM3);
        # 5,938 nodes x 4 = 23,752 GH200 (Hardwareluxx, secondary); 50 % EuroHPC funding
        # (https://www.europesays.com/?p=2388953, secondary).
        id="jupiter-booster",
        name="JUPITER Booster",
        site="Forschungszentrum Juelich (DE)",
        accelerator="NVIDIA GH200 Grace Hopper (96 GB HBM3)",
        stack=Stack.CUDA,
        cpu_arch=Arch.AARCH64,
        gpu_memory_gb=96,
        gpus=23_752,
        tier="high-end",
        eurohpc_share=HIGH_END_SHARE,
        exchange_rate=2.2,
        award_unit=1000,
        uncertain="exact EuroHPC share (50 % assumed from the funding split)",
        source="https://apps.fz-juelich.de/jsc/hps/jupiter/configuration.html",
    ),
    Partition(
        # https://docs.lumi-supercomputer.eu/hardware/lumig (2,978 nodes x 4 MI250X, 8 GCDs per node);
        # https://www.lumi-supercomputer.eu/resource-allocation/ (half EuroHPC).
        id="lumi-g",
        name="LUMI-G",
        site="CSC, Kajaani (FI)",
        accelerator="AMD MI250X (one GCD, 64 GB HBM2e)",
        stack=Stack.ROCM,
        cpu_arch=Arch.X86_64,
        gpu_memory_gb=64,
        gpus=23_824,
        tier="high-end",
        eurohpc_share=HIGH_END_SHARE,
        exchange_rate=0.9,
        award_unit=1000,
        uncertain="billing unit (one GCD assumed)",
        source="https://docs.lumi-supercomputer.eu/hardware/lumig",
    ),
    Partition(
        # https://leonardo-supercomputer.cineca.eu/hpc-system ; https://docs.hpc.cineca.it/hpc/leonardo.html
        # (3,456 nodes x 4 A100 SXM4 64 GB).
        id="leonardo-booster",
        name="Leonardo Booster",
        site="CINECA, Bologna (IT)",
        accelerator="NVIDIA A100 SXM4 (64 GB)",
        stack=Stack.CUDA,
        cpu_arch=Arch.X86_64,
        gpu_memory_gb=64,
        gpus=13_824,
        tier="high-end",
        eurohpc_share=HIGH_END_SHARE,
        exchange_rate=1.0,
        award_unit=1000,
        uncertain="exact EuroHPC share (regulation ceiling of 50 % assumed)",
        source="https://docs.hpc.cineca.it/hpc/leonardo.html",
    ),
    Partition(
        # https://www.bsc.es/marenostrum/marenostrum-5 (1,120 nodes x 4 H100 64 GB); EuroHPC decides on
        # half the access time (EE Times Europe interview with BSC, 2024).
        id="mn5-acc",
        name="MareNostrum 5 ACC",
        site="BSC, Barcelona (ES)",
        accelerator="NVIDIA H100 (64 GB HBM2e)",
        stack=Stack.CUDA,
        cpu_arch=Arch.X86_64,
        gpu_memory_gb=64,
        gpus=4_480,
        tier="high-end",
        eurohpc_share=HIGH_END_SHARE,
        exchange_rate=2.0,
        award_unit=1000,
        source="https://www.bsc.es/marenostrum/marenostrum-5",
    ),
    Partition(
        # IT4I documentation: accelerated nodes acn[01-72], eight A100 40 GB each (72 x 8 = 576).
        id="karolina-acn",
        name="Karolina (accelerated)",
        site="IT4Innovations, Ostrava (CZ)",
        accelerator="NVIDIA A100 (40 GB)",
        stack=Stack.CUDA,
        cpu_arch=Arch.X86_64,
        gpu_memory_gb=40,
        gpus=576,
        tier="mid-range",
        eurohpc_share=MID_RANGE_SHARE,
        exchange_rate=1.0,
        award_unit=500,
        uncertain="exact EuroHPC share (mid-range ceiling of 35 % assumed)",
        source="IT4I documentation, Karolina accelerated nodes (cited without a URL in domain.md §2)",
    ),
    Partition(
        # https://en-doc.vega.izum.si/architecture/ (60 nodes x 4 A100); https://doc.vega.izum.si/shares/
        # (35 % EuroHPC; 2,102,400 GPU-h a year).
        id="vega-gpu",
        name="Vega GPU",
        site="IZUM, Maribor (SI)",
        accelerator="NVIDIA A100 (40 GB)",
        stack=Stack.CUDA,
        cpu_arch=Arch.X86_64,
        gpu_memory_gb=40,
        gpus=240,
        tier="mid-range",
        eurohpc_share=MID_RANGE_SHARE,
        exchange_rate=1.0,
        award_unit=500,
        uncertain="GPU memory (40 GB)",
        source="https://doc.vega.izum.si/shares/",
    ),
    Partition(
        # https://docs.lxp.lu/system/overview (GPU nodes with 4 A100 40 GB, 2x EPYC 7452).
        id="meluxina-gpu",
        name="MeluXina Accelerator",
        site="LuxProvide, Bissen (LU)",
        accelerator="NVIDIA A100 (40 GB)",
        stack=Stack.CUDA,
        cpu_arch=Arch.X86_64,
        gpu_memory_gb=40,
        gpus=800,
        tier="mid-range",
        eurohpc_share=MID_RANGE_SHARE,
        exchange_rate=1.0,
        award_unit=500,
        uncertain="GPU count (~200 nodes x 4 = 800 assumed) and the exact EuroHPC share",
        source="https://docs.lxp.lu/system/overview",
    ),
    Partition(
        # EU paid 35 % of EUR 20 M: https://www.portugalresident.com/portugal-unveils-its-fastest-ever-supercomputer/
        # GPU partitions normal-a100-40 / normal-a100-80 (repository note cited in domain §2).
        id="deucalion-gpu",
        name="Deucalion GPU (A100 80 GB)",
        site="MACC, Guimaraes (PT)",
        accelerator="NVIDIA A100 (80 GB)",
        stack=Stack.CUDA,
        cpu_arch=Arch.X86_64,
        gpu_memory_gb=80,
        gpus=128,
        tier="mid-range",
        eurohpc_share=MID_RANGE_SHARE,
        exchange_rate=1.0,
        award_unit=500,
        uncertain="GPU count unknown: 32 nodes x 4 A100 80 GB = 128 ASSUMED",
        source="https://eurohpc-ju.europa.eu/deucalion-new-eurohpc-world-class-green-supercomputer-portugal-2021-02-05_en",
    ),
)
