"""Run the dnc_policy node on a robot.

    ros2 launch dnc_policy policy.launch.py model:=/path/policy.onnx
    ros2 launch dnc_policy policy.launch.py model:=/path/policy.onnx \
        params_file:=/path/my_policy.yaml observation_topic:=/robot/obs cmd_vel_topic:=/cmd_vel

The node is a lifecycle node; with ``autostart: true`` (the default in config/policy.yaml)
it configures and activates itself, with ``false`` it waits for a lifecycle manager.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    args = [
        DeclareLaunchArgument("model", description="policy.onnx written by export.onnx"),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution(
                [FindPackageShare("dnc_policy"), "config", "policy.yaml"]),
            description="the node's parameters"),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        DeclareLaunchArgument("observation_topic", default_value="observation"),
        DeclareLaunchArgument("action_topic", default_value="action"),
        DeclareLaunchArgument("cmd_vel_topic", default_value="cmd_vel"),
        DeclareLaunchArgument("log_level", default_value="info",
                              description="e.g. debug, or dnc_policy:=debug for this node only"),
    ]
    node = LifecycleNode(
        package="dnc_policy",
        executable="policy_node",
        name="dnc_policy",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {"model_path": ParameterValue(LaunchConfiguration("model"), value_type=str)},
        ],
        remappings=[
            ("observation", LaunchConfiguration("observation_topic")),
            ("action", LaunchConfiguration("action_topic")),
            ("cmd_vel", LaunchConfiguration("cmd_vel_topic")),
        ],
        ros_arguments=["--log-level", LaunchConfiguration("log_level")],
    )
    return LaunchDescription(args + [node])
