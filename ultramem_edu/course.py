"""The course plan as data: one source for the preface's plan and the instructor's module plan.

:data:`CHAPTERS` gives each chapter its title, the module of the package it introduces, the modules
it builds on, its hours and its session; :data:`PLAN` gives each session its lecture and lab
minutes, objectives (each tied to the exercise checks in :mod:`ultramem_edu.exercises` that assess
it), the quiz and the grading weights. ``scripts/make_instructor_kit.py`` writes the preface's plan
table and the module plan's session pages from these, and the tests check that both agree with them.

The module has ten sessions, one per working day of two weeks, and an optional eleventh (chapter 13,
sharding, and chapter 14, continual learning through the memory); the optional session carries no grade.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CHAPTERS", "Objective", "Session", "PLAN", "GRADING", "SOLUTION_RELEASE", "session_of",
           "graded_sessions", "weights_total"]

# chapter: (title, module it introduces, modules it builds on, hours, session)
CHAPTERS: dict[int, tuple[str, str | None, tuple[str, ...], float, int]] = {
    0: ("Preface", None, (), 0.5, 1),
    1: ("The MLP as a key-value memory", "memory", (), 1.5, 1),
    2: ("Product keys", "product_keys", ("memory",), 2.0, 2),
    3: ("From PKM to UltraMem's layer", "layer", ("memory", "product_keys"), 2.0, 3),
    4: ("Where the memory goes", "model", ("layer",), 1.0, 3),
    5: ("Tucker-decomposed retrieval (TDQKR)", "tdqkr", ("product_keys", "layer"), 2.0, 4),
    6: ("Implicit value expansion (IVE)", "ive", ("layer",), 1.5, 5),
    7: ("Multi-core scoring (MCS)", "mcs", ("tdqkr", "ive"), 1.0, 5),
    8: ("Initialisation", "init", ("layer", "tdqkr", "ive"), 1.5, 6),
    9: ("The GPU kernel", "kernels", ("ive", "mcs"), 2.5, 7),
    10: ("Inference cost", "cost", ("layer", "model"), 2.0, 8),
    11: ("Training tiny language models", "train", ("model", "layer", "tdqkr"), 2.5, 9),
    12: ("After UltraMem", "v2", ("model", "layer", "tdqkr", "train"), 2.0, 10),
    13: ("Sharding the memory", "distributed", ("layer", "model", "train", "cost"), 2.0, 11),
    14: ("Learning new facts without forgetting", "continual", ("model", "layer", "train"), 1.0, 11),
}


@dataclass(frozen=True)
class Objective:
    """What a student can do after the session, and the checks (``chNN:check_...``) that assess it."""

    text: str
    checks: tuple[str, ...]


@dataclass(frozen=True)
class Session:
    number: int
    topic: str
    lecture_min: int
    lab_min: int
    paper: str
    lab: str
    objectives: tuple[Objective, ...]
    quizzes: tuple[int, ...]
    weights: dict[str, float]          # grade component -> percent of the module grade
    milestone: str = ""
    optional: bool = False

    @property
    def chapters(self) -> tuple[int, ...]:
        return tuple(ch for ch, row in CHAPTERS.items() if row[4] == self.number)

    @property
    def minutes(self) -> int:
        return self.lecture_min + self.lab_min


_O = Objective

PLAN: tuple[Session, ...] = (
    Session(1, "setting up; the MLP as a key-value memory, top-$m$ memory and its $O(N)$ scoring", 50, 70,
            "§1 (Fig. 1), §3.1", "`topm_read`, the top-$m$ memory read",
            (_O("Read an MLP and attention as memory layers and count what scoring every key costs",
                ("ch01:check_scoring_flops", "ch01:check_attention_scale")),
             _O("Write a top-$m$ memory read that touches only $m$ value rows",
                ("ch01:check_topm_activation", "ch01:check_topm_read"))),
            (1,), {"lab": 5.0, "quiz": 2.0}),
    Session(2, "product keys: two-dimensional addressing, two-stage top-$m$, retrieval topology", 50, 70,
            "§3.1; §3.2 (PKM's topology bias)", "`product_key_topm`, the exact two-stage search",
            (_O("Prove the two-stage search exact for additive scores and break it with signed products",
                ("ch02:check_signed_product_counterexample",)),
             _O("Count product-key against dense scoring cost", ("ch02:check_pkm_cost",)),
             _O("Write the exact two-stage top-$m$ without scoring the grid", ("ch02:check_product_key_topm",))),
            (2,), {"lab": 5.0, "quiz": 2.0}),
    Session(3, "from PKM to UltraMem's layer, one switch per improvement; skip-layer wiring", 80, 100,
            "§3.2 (improvements, overall structure); Table 2", "`value_lr_multiplier`; `skip_layer_forward`",
            (_O("Size the changes of the ladder: keys per side, shared query, value learning rate",
                ("ch03:check_keys_per_side", "ch03:check_query_weights", "ch03:check_value_lr_halfway",
                 "ch03:check_value_lr_multiplier")),
             _O("Wire memories across blocks and time how the lookup overlaps them",
                ("ch04:check_wiring", "ch04:check_step_time", "ch04:check_split_keys",
                 "ch04:check_skip_layer_forward"))),
            (3, 4), {"lab": 5.0, "quiz": 2.0}),
    Session(4, "Tucker-decomposed query-key retrieval and the singular spectrum of its core", 50, 70,
            "§3.2 (TDQKR, Fig. 4)", "`tucker_scores`; `tdqkr_two_stage` (with the negative corner)",
            (_O("Score a grid through a Tucker core and keep it near rank 1 with the auxiliary loss",
                ("ch05:check_tucker_scores", "ch05:check_aux_loss_value")),
             _O("Search it in two stages, sign-aligned, including the negative corner",
                ("ch05:check_sign_alignment", "ch05:check_tdqkr_two_stage"))),
            (5,), {"lab": 5.0, "quiz": 2.0, "project": 2.5}, "project choice and a written prediction"),
    Session(5, "implicit value expansion; multi-core scoring", 60, 90,
            "§3.2 (IVE, Fig. 5; MCS)", "`ive_lookup` (must not build the virtual table); `mcs_pool`",
            (_O("Address virtual values through the shuffle and pool before projecting",
                ("ch06:check_keys_and_virtual", "ch06:check_block_and_row", "ch06:check_projection_flops",
                 "ch06:check_ive_lookup")),
             _O("Split the scores over cores and count what the cores cost",
                ("ch07:check_core_scores", "ch07:check_equal_cores_factor", "ch07:check_core_parameters",
                 "ch07:check_mcs_pool"))),
            (6, 7), {"lab": 5.0, "quiz": 2.0}),
    Session(6, "initialisation: top-$m$ means by Monte Carlo, output variance $1/(2L)$", 40, 50,
            "§3.2 (improved initialisation)", "`topm_mean_monte_carlo`",
            (_O("Derive the value variance and the LayerNorm scale that give output variance $1/(2L)$",
                ("ch08:check_value_std", "ch08:check_ln_scale")),
             _O("Estimate a top-$m$ mean by Monte Carlo with its standard error",
                ("ch08:check_topm_mean", "ch08:check_topm_mean_monte_carlo"))),
            (8,), {"lab": 5.0, "quiz": 2.0, "project": 2.5}, "project plan with its power calculation"),
    Session(7, "the lookup kernel in Triton, forward and backward, against the roofline", 60, 90,
            "Fig. 1(c) (memory access)",
            "Triton puzzles 1–4: one row, a masked tile, a weighted sum, blocks of the virtual table; "
            "puzzle 5 (the backward) as a stretch",
            (_O("Bound the lookup by the bytes it must move and size its launch grid",
                ("ch09:check_bytes_moved", "ch09:check_segments", "ch09:check_forward_programs")),
             _O("Write the lookup's Triton kernels with masks and float32 accumulation",
                ("puzzles:check_gather_row", "puzzles:check_gather_rows", "puzzles:check_weighted_sum",
                 "puzzles:check_block_lookup", "puzzles:check_lookup_backward"))),
            (9,), {"lab": 5.0, "quiz": 2.0}),
    Session(8, "inference cost: memory access of dense, MoE and UltraMem models against batch size", 60, 60,
            "§1 (Fig. 1(b), (c))", "the chapter's exercises (expected distinct experts and rows)",
            (_O("Count the distinct experts and value rows a decoding step reads, and the ratio's ceiling",
                ("ch10:check_expected_experts", "ch10:check_expected_rows", "ch10:check_ratio_ceiling")),),
            (10,), {"lab": 5.0, "quiz": 2.0}),
    Session(9, "training tiny language models at matched compute; the ablation ladder", 60, 90,
            "Tables 1 and 2", "project work",
            (_O("Match models by activated parameters and decide how many seeds resolve an effect",
                ("ch11:check_memory_activated", "ch11:check_value_lr", "ch11:check_seeds_needed",
                 "ch11:check_output_speed_ratio")),),
            (11,), {"quiz": 2.0, "project": 15.0}, "project results"),
    Session(10, "after UltraMem: UltraMemV2, PEER and Memory+ in the same notation; a small comparison", 50, 70,
            "UltraMemV2, PEER", "project presentations",
            (_O("Place UltraMemV2, PEER and Memory+ in one notation and count their costs",
                ("ch12:check_window", "ch12:check_v2_activated", "ch12:check_eq26_std",
                 "ch12:check_router_cost")),),
            (12,), {"quiz": 2.0, "project": 20.0}, "ten-minute presentation"),
    Session(11, "sharding the memory and learning new facts without forgetting: the value table across devices by rows "
            "and by columns, data-parallel training; sparse memory finetuning",
            70, 110, "Lin et al. (2025), sparse memory finetuning",
            "the chapters' exercises (column slices, bytes per scheme, ranks needed; the TF-IDF slot ranking)",
            (_O("Cut a value table over devices and count what each scheme sends",
                ("ch13:check_column_slice", "ch13:check_column_bytes", "ch13:check_hot_rank_bytes",
                 "ch13:check_min_ranks")),
             _O("Rank a batch's memory slots by TF-IDF against the pretraining data",
                ("ch14:check_tfidf_slot_ranking",))),
            (13, 14), {}, optional=True),
)

GRADING: dict[str, str] = {
    "lab": "the session's coding exercises, scored by their checks under the instructor's grading seed",
    "quiz": "the chapter quiz(zes) of the session, drawn with the instructor's seed (fresh numeric variants)",
    "project": "the project milestones of the projects page (prediction, plan, results, presentation)",
}

SOLUTION_RELEASE = (
    "Students work in the student edition, which holds the exercise stubs but no solutions. A session's "
    "solutions (the instructor edition of its chapters) are released after its lab closes, 48 hours after "
    "the session, once every submission has been graded; quiz keys after the quiz closes. The grading seed "
    "is never released: a new seed gives new hidden inputs and new numeric quiz variants for the next cohort. "
    "The optional session's solutions may be released with it."
)


def session_of(chapter: int) -> int:
    """The session that covers ``chapter``."""
    if chapter not in CHAPTERS:
        raise ValueError(f"chapter must be one of {sorted(CHAPTERS)}, got {chapter!r}")
    return CHAPTERS[chapter][4]


def graded_sessions() -> list[Session]:
    return [s for s in PLAN if not s.optional]


def weights_total() -> float:
    """Sum of every session's weights (percent): 100 for a consistent plan."""
    return sum(sum(s.weights.values()) for s in PLAN)
