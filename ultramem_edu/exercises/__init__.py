"""Self-check functions for the book's exercises, one module per chapter (``ch01``, ``ch02``, ...).

Each ``check_*`` function takes the reader's answer and raises AssertionError with a hint when it is
wrong, or prints a confirmation when it is right.
"""
