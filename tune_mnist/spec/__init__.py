"""What a study asks for, as typed data: trial configs, space files, searches. No Ray, no torch.

The lowest wing: every other wing reads these contracts; this one imports none of them.
"""
