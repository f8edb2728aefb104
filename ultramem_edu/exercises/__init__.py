"""The book's exercises, one module per chapter (``ch01``, ``ch02``, ...), and chapter 9's Triton puzzles.

Two kinds of checks:

* ``check_*`` functions for questions with a number or a short answer: they take the reader's answer
  and raise AssertionError with a hint when it is wrong, or print a confirmation when it is right;
* **coding exercises**: a function the reader writes, from a stub that raises ``NotImplementedError``
  (``chNN.<NAME>_STUB``; :func:`~ultramem_edu.exercises._grading.stub_source`), with a check
  (``chNN.check_<name>``) that compares the reader's function with the package's production code on
  random inputs and edge cases and names the mistake. Chapter 9's are Triton kernels
  (:mod:`ultramem_edu.exercises.puzzles`, which imports triton; ``ch09`` does not).
  :func:`~ultramem_edu.exercises._grading.coding_exercises` lists them all.

The package holds no solution (the instructor edition of the chapters shows them), and while a check
runs the reader's function the package's own implementation of that exercise is refused.
:mod:`ultramem_edu.exercises.grade` grades a student's notebooks (``python -m
ultramem_edu.exercises.grade``) and writes Gradescope's ``results.json``.
"""
