"""Sim-in-the-loop: the dnc_policy node against the sim bridge, over real DDS.

    ros2 launch dnc_policy_tools sim.launch.py model:=/path/policy.onnx episodes:=20

The bridge runs the env the model was trained on (from the model's contract) in
lock-step, resets the policy's memory at each episode start, prints a summary after
``episodes`` episodes and exits, which ends the launch.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def shutdown_once(reason: str) -> OpaqueFunction:
    """End the launch when a process exits, unless it is already ending: a second
    Shutdown makes launch_ros stop its ROS adapter twice, which fails the launch."""
    return OpaqueFunction(
        function=lambda context: [] if context.is_shutdown else [Shutdown(reason=reason)])


def generate_launch_description():
    policy_yaml = PathJoinSubstitution([FindPackageShare("dnc_policy"), "config", "policy.yaml"])
    sim_yaml = PathJoinSubstitution([FindPackageShare("dnc_policy_tools"), "config", "sim.yaml"])
    model = ParameterValue(LaunchConfiguration("model"), value_type=str)
    args = [
        DeclareLaunchArgument("model", description="policy.onnx written by export.onnx"),
        DeclareLaunchArgument("episodes", default_value="20"),
        DeclareLaunchArgument("seed", default_value="0"),
        DeclareLaunchArgument("mode", default_value="lockstep",
                              description="lockstep or realtime"),
        DeclareLaunchArgument("summary_path", default_value="",
                              description="write the bridge's summary here (JSON)"),
    ]
    policy = LifecycleNode(
        package="dnc_policy",
        executable="policy_node",
        name="dnc_policy",
        namespace="",
        output="screen",
        parameters=[policy_yaml, sim_yaml, {"model_path": model}],
        on_exit=shutdown_once("the policy node exited"),
    )
    bridge = Node(
        package="dnc_policy_tools",
        executable="sim_bridge",
        name="sim_bridge",
        output="screen",
        parameters=[sim_yaml,
                    {"model_path": model,
                     "episodes": ParameterValue(LaunchConfiguration("episodes"), value_type=int),
                     "seed": ParameterValue(LaunchConfiguration("seed"), value_type=int),
                     "mode": ParameterValue(LaunchConfiguration("mode"), value_type=str),
                     "summary_path": ParameterValue(LaunchConfiguration("summary_path"),
                                                    value_type=str)}],
        on_exit=shutdown_once("sim bridge finished"),
    )
    return LaunchDescription(args + [policy, bridge])
