from fakestudio.cli import main

main()
