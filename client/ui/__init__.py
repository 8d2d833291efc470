"""
The Qt layer of the client: a bridge from the state to signals, models,
delegates and windows.
"""
