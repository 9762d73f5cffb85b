"""ROS 2 front end of MaskSem: a thin rclpy node over the service's streaming core."""
