#!/usr/bin/env bash
# Entrypoint of the dnc_policy ROS 2 images (docker/Dockerfile.jetson, docker/Dockerfile.sim).
#
# Sources ROS 2 and the dnc_policy workspace, then
#   - with no arguments, or arguments that are launch arguments (name:=value):
#       ros2 launch ${DNC_LAUNCH_PACKAGE} ${DNC_LAUNCH} model:=${DNC_MODEL} [the arguments]
#     DNC_LAUNCH_PACKAGE, DNC_LAUNCH: dnc_policy policy.launch.py (robot; the default) or
#     dnc_policy_tools sim.launch.py (node + sim bridge, the sim image);
#     DNC_MODEL: the model file (default /models/policy.onnx); a model:= argument wins.
#   - with any other command: runs it in that environment (bash, ros2 topic echo ...,
#     python3 -m dnc_policy_tools.bench /models/policy.onnx, ros2 run dnc_policy_tools sim_bridge ...).
set -eo pipefail  # no -u: the ROS setup scripts read unset variables

# ROS_SETUP: another ROS 2 install's setup script (a source build; the tests use it).
# shellcheck source=/dev/null
source "${ROS_SETUP:-/opt/ros/${ROS_DISTRO:-humble}/setup.bash}"
# shellcheck source=/dev/null
source "${DNC_WS:-/opt/dnc_ws}/install/setup.bash"

if [[ $# -gt 0 && "$1" != *":="* ]]; then
    exec "$@"
fi

model="${DNC_MODEL:-/models/policy.onnx}"
has_model_arg=false
for arg in "$@"; do
    if [[ "$arg" == model:=* ]]; then
        model="${arg#model:=}"
        has_model_arg=true
    fi
done
if [[ ! -f "$model" ]]; then
    echo "dnc_policy: no model file at ${model}. Mount the folder holding policy.onnx" \
         "(docker run -v /path/to/run:/models ...) or set DNC_MODEL / pass model:=PATH." >&2
    exit 2
fi
# TensorRT writes its engine cache to trt_cache/ beside the model
# (dnc_policy.runtime.pick_providers); without a writable one every start rebuilds it.
if [[ "${DNC_TRT_CACHE_CHECK:-0}" == 1 ]]; then
    cache="$(dirname "$model")/trt_cache"
    if { [[ -d "$cache" ]] && [[ ! -w "$cache" ]]; } \
        || { [[ ! -e "$cache" ]] && [[ ! -w "$(dirname "$model")" ]]; }; then
        echo "dnc_policy: warning: ${cache} is not writable: the TensorRT engine will be" \
             "rebuilt at every start (mount the model folder read-write, or a volume at" \
             "${cache}; docs/JETSON.md)." >&2
    fi
fi

if [[ "$has_model_arg" == false ]]; then
    set -- "model:=${model}" "$@"
fi
exec ros2 launch "${DNC_LAUNCH_PACKAGE:-dnc_policy}" "${DNC_LAUNCH:-policy.launch.py}" "$@"
