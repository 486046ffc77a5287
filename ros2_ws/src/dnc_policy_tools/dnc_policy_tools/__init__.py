"""dnc_policy_tools: workstation tools around the dnc_policy node, not needed on a robot.

``sim_bridge`` runs a Gymnasium env against the node over DDS, ``sim_loop`` starts both
(what ``ros2 launch dnc_policy_tools sim.launch.py`` does) and ``bench`` measures the
node's round trip at 1 kHz.
"""
