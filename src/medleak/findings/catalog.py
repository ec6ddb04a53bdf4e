"""The eight published findings medleak checks: the claim, where it comes from, the criterion.

The text here is what the paper says and what medleak counts as agreement; the decision itself
is computed by the analysis function from the store (``ANALYSES``), never written down here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from medleak.experiments.sqlite_store import StoredRun
from medleak.findings import attack_findings, training_findings
from medleak.findings.outcome import Outcome


@dataclass(frozen=True)
class Finding:
    number: int
    title: str
    claim: str
    source: str
    setting: str
    criterion: str
    analyse: Callable[[Sequence[StoredRun]], list[Outcome]]


FINDINGS: tuple[Finding, ...] = (
    Finding(
        1,
        "DLG rebuilds a single image on its sigmoid LeNet",
        "Deep Leakage from Gradients recovers a single training image almost exactly from its "
        "gradient on a small sigmoid LeNet.",
        "Zhu, Liu and Han, Deep Leakage from Gradients, NeurIPS 2019",
        "DLG's sigmoid LeNet (`lenet-dlg`), 32 px, batch 1, FedSGD; DLG (L-BFGS, 300 steps) and "
        "medleak's ROG (200 steps) for comparison",
        "DLG reaches PSNR >= 30 dB on more than half of the seeds",
        attack_findings.finding_1,
    ),
    Finding(
        2,
        "Leakage falls as the batch grows",
        "Gradient inversion gets harder with more images per update: reconstructions degrade "
        "as the batch size grows.",
        "Zhu et al. 2019; Geiping et al., Inverting Gradients, NeurIPS 2020",
        "ROG's ResNet-18 (`resnet18-rog`, no BatchNorm) with IG (100 iterations) and ROG's LeNet "
        "(`lenet`) with IG and ROG with and without its analytic stage (50 iterations), batch "
        "1, 2, 4, 8, 16 (16 on phantoms only); FedSGD, 32 px",
        "for every optimisation attack that leaks at its smallest batch (SSIM above floor >= "
        "0.05), the rank correlation of mean SSIM above floor with batch size is <= -0.5 and the "
        "largest batch is at least 0.05 lower; the analytic stage is reported, not judged",
        attack_findings.finding_2,
    ),
    Finding(
        3,
        "Leakage falls with more local steps and a larger local learning rate",
        "A FedAvg update built from several local steps at a larger learning rate leaks less than "
        "a single gradient.",
        "Geiping et al. 2020; Yue et al., Gradient Obfuscation Gives a False Sense of Security in "
        "Federated Learning, USENIX Security 2023",
        "FedAvg on ROG's LeNet, 32 px, batch 4, tau 1 / 5 / 10 local steps at lr 1e-4 and "
        "tau 5 / 10 at lr 1e-2 (tau 1 sends the gradient whatever the lr); "
        "ROG (exact unroll, 50 iterations)",
        "for each attack that leaks somewhere, the rank correlation of mean SSIM above floor with "
        "tau x lr is <= -0.5 and the largest tau x lr is at least 0.05 below the smallest",
        attack_findings.finding_3,
    ),
    Finding(
        4,
        "BatchNorm statistics bring the leak back",
        "BatchNorm in training mode defeats attacks that ignore it; using the batch statistics "
        "the client sends (GradInversion-style) restores the reconstruction.",
        "Hatamizadeh et al., Do Gradient Inversion Attacks Make Federated Learning Unsafe?, "
        "IEEE TMI 2023",
        "standard ResNet-18 (`resnet18`, BatchNorm in training mode), FedAvg tau 1 (the update "
        "carries the running statistics), 32 px, batch 2; IG (50 iterations) with "
        "`attack.bn_statistics` off / on",
        "for at least one attack, mean SSIM above floor with the statistics on exceeds off by "
        ">= 0.05",
        attack_findings.finding_4,
    ),
    Finding(
        5,
        "ROG stays effective under QSGD and top-k",
        "An obfuscation-aware attack (ROG) still reconstructs under quantization and "
        "sparsification where an unaware attack degrades.",
        "Yue et al., USENIX Security 2023",
        "ROG's LeNet, FedSGD, 32 px, batch 4; `qsgd:levels=4`, `qsgd:levels=16`, "
        "`topk:ratio=0.1`, `topk:ratio=0.01` (and none); "
        "medleak's ROG aware (`--aware`) and unaware "
        "(`--no-aware`), and the reference ROG core (`--preset rog-core`), 50 iterations",
        "averaged over the obfuscated settings, aware ROG keeps >= 0.05 more SSIM above floor "
        "than the unaware attack, and more in a majority of the settings",
        attack_findings.finding_5,
    ),
    Finding(
        6,
        "Enough DP noise stops reconstruction, at an accuracy cost",
        "Differentially private SGD with enough noise prevents gradient inversion, and the noise "
        "costs model accuracy.",
        "Abadi et al., Deep Learning with Differential Privacy, CCS 2016; Zhu et al. 2019 on noise",
        "DP-SGD (clip 1, noise multiplier z = 0.5, 1, 2) in the attacked update (ROG's LeNet, "
        "FedSGD, 32 px, batch 2, ROG) and in every local step of a 4-client, 6-round FedAvg "
        "(2 of 4 clients per round, 30 local steps) "
        "training of the same setting",
        "the weakest DP setting whose attacks get the verdict 'no measurable leakage' on most "
        "seeds has a mean test accuracy at least 0.025 below no defense",
        training_findings.finding_6,
    ),
    Finding(
        7,
        "Trained models leak less than freshly initialised ones",
        "Gradients of a trained model leak less than those of a randomly initialised one (the "
        "literature is mixed).",
        "Huang et al., Evaluating Gradient Inversion Attacks and Defenses in Federated Learning "
        "(GradAttack), NeurIPS 2021",
        "the global model of a 4-client FedAvg training (no defense) at round 0, 1 and 6, ROG's "
        "LeNet, FedSGD, 32 px, batch 2; ROG (50 iterations)",
        "the strongest attack's mean SSIM above floor at the last round is at least 0.05 below "
        "round 0",
        training_findings.finding_7,
    ),
    Finding(
        8,
        "Non-IID data raises the accuracy cost of a defense",
        "FedAvg loses accuracy on non-IID client data, so a defense that costs accuracy costs "
        "more there.",
        "Zhao et al., Federated Learning with Non-IID Data, 2018",
        "4-client, 6-round FedAvg (2 of 4 clients per round, 30 local steps) training of "
        "ROG's LeNet, 32 px, IID vs Dirichlet(alpha 0.1) "
        "class skew; no defense, `dp:c=1.0,z=2.0`, `topk:ratio=0.01`",
        "the accuracy drop against no defense is larger under non-IID for a majority of the "
        "defenses, and by >= 0.025 on average",
        training_findings.finding_8,
    ),
)

BY_NUMBER = {f.number: f for f in FINDINGS}
