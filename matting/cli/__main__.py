from matting.cli import main

main()
