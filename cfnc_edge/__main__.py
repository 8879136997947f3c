from cfnc_edge.cli import main

main()
