"""Is there a Java for the embedded Spark? Asked before pyspark launches its JVM, whose
absence pyspark reports as a long [JAVA_GATEWAY_EXITED] error after Java's own message.

require_java() finds the java Spark's launcher (spark-class) would run: $JAVA_HOME/bin/java
when JAVA_HOME is set, else `java` on PATH; without one it raises a ConfigError that the
command line prints on one line (cli_report.py).
Tests: tests/cli/test_errors.py (test_no_java_is_one_line).
"""

from __future__ import annotations

import os
import shutil

from caffeonspark.errors import ConfigError

__all__ = ["INSTALL_HINT", "require_java"]

INSTALL_HINT = "install a JDK 17 (Debian: apt-get install openjdk-17-jre-headless)"


def require_java() -> str:
    """The path of the java that Spark will start; ConfigError when there is none."""
    home = os.environ.get("JAVA_HOME")
    if home:
        java = os.path.join(home, "bin", "java")
        if os.access(java, os.X_OK):
            return java
        raise ConfigError(f"Spark needs Java (JAVA_HOME={home} has no bin/java): "
                          f"{INSTALL_HINT}, or set JAVA_HOME to one")
    java = shutil.which("java")
    if java is None:
        raise ConfigError(f"Spark needs Java (JAVA_HOME is not set and no java on PATH): "
                          f"{INSTALL_HINT}")
    return java
